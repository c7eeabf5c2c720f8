"""The conformance vectors are copied into tests/data so a fresh clone tests without ../shared.

This test fails when the copy drifts from ../shared/conformance (when that folder exists), so an
update of the shared vectors cannot be silently missed.
"""

from __future__ import annotations

import filecmp
import json
from pathlib import Path

import pytest

HERE = Path(__file__).parent / "data" / "conformance"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "conformance"
FILES = ["references.json", "keyring.json", "registries-and-platforms.json"]


TOP_LEVEL = {
    "references.json": {"upstream_tables", "kubelet_ParseImageName", "computed"},
    "keyring.json": {
        "urls_match_and_default_registry",
        "config_decode",
        "secrets_make_docker_keyring",
        "scenarios",
    },
    "registries-and-platforms.json": {
        "ecr_private_host_regex",
        "platform_TestOnly",
        "matchImages_coverage_computed",
    },
}


@pytest.mark.parametrize("name", FILES)
def test_copy_is_complete(name: str) -> None:
    data = json.loads((HERE / name).read_text())
    assert TOP_LEVEL[name] <= set(data), f"{name} lacks {TOP_LEVEL[name] - set(data)}"


@pytest.mark.parametrize("name", FILES)
def test_copy_matches_shared_folder_when_present(name: str) -> None:
    # CI clones main with shared/ beside it; a clone elsewhere has only the copy to test with.
    if SHARED.is_dir():
        assert filecmp.cmp(HERE / name, SHARED / name, shallow=False), (
            f"tests/data/conformance/{name} differs from {SHARED / name}: copy the new vectors in"
        )
