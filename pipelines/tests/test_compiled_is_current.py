"""Each checked-in compiled pipeline is what a fresh compile gives."""

import pytest

from pipelines.compile import checked_in, compile_to_text, normalized, pipeline_functions


@pytest.mark.parametrize("name", sorted(pipeline_functions()))
def test_checked_in_yaml_matches_a_fresh_compile(name: str) -> None:
    assert checked_in(name) == normalized(compile_to_text(name)), (
        f"pipelines/{name}/pipeline.yaml is stale: run `python -m pipelines.compile`"
    )
