"""The conformance vectors are copied into tests/data so a fresh clone tests without ../shared.

This test fails when the copy drifts from ../shared/conformance (when that folder exists), so an
update of the shared vectors cannot be silently missed.
"""

from __future__ import annotations

import hashlib
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


def _manifest() -> dict[str, str]:
    lines = (HERE / "SHA256SUMS").read_text().splitlines()
    return {name: digest for digest, name in (line.split() for line in lines if line.strip())}


@pytest.mark.parametrize("name", FILES)
def test_copy_is_the_recorded_version(name: str) -> None:
    """The copy is byte-for-byte the version whose checksum is recorded (a fresh clone checks this)."""
    digest = hashlib.sha256((HERE / name).read_bytes()).hexdigest()
    assert _manifest()[name] == digest, f"tests/data/conformance/{name} changed without updating SHA256SUMS"


@pytest.mark.parametrize("name", FILES)
def test_shared_folder_has_not_moved_on(name: str) -> None:
    """Where the team's folder sits beside the clone, it must still hold the recorded version.

    A fresh CI machine has no ``../shared``; then the recorded checksum is all there is to
    compare with, and the test above covers it. Here the shared file must exist and match.
    """
    shared = SHARED / name
    if not SHARED.is_dir():
        # No team folder on this machine: the checksum manifest is the reference.
        assert name in _manifest()
        return
    digest = hashlib.sha256(shared.read_bytes()).hexdigest()
    assert digest == _manifest()[name], (
        f"{shared} differs from tests/data/conformance/{name}: copy the new vectors in and update SHA256SUMS"
    )
