"""Each checked-in compiled pipeline is what a fresh compile gives."""

import pytest

from pipelines.compile import compile_to_text, normalized, package_path, pipeline_functions


@pytest.mark.parametrize("name", sorted(pipeline_functions()))
def test_checked_in_yaml_matches_a_fresh_compile(name: str) -> None:
    checked_in = normalized(package_path(name).read_text())
    assert checked_in == normalized(compile_to_text(name)), (
        f"pipelines/{name}/pipeline.yaml is stale: run `python -m pipelines.compile`"
    )
