"""Each checked-in compiled pipeline (one per kind of storage root) is what a fresh compile gives."""

import pytest

from pipelines.compile import compile_to_text, normalized, package_path, packages


@pytest.mark.parametrize(("name", "kind"), sorted(packages()))
def test_checked_in_yaml_matches_a_fresh_compile(name: str, kind: str) -> None:
    checked_in = normalized(package_path(name, kind).read_text())
    assert checked_in == normalized(compile_to_text(name, kind)), (
        f"{package_path(name, kind)} is stale: run `python -m pipelines.compile`"
    )
