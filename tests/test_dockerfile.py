"""The Dockerfile's install steps really work, and its final image is minimal and non-root.

No image can be built here (docker has no engine on this machine), so the test does what the
builder stage does, for real: it parses the Dockerfile, copies the build context the way
``.dockerignore`` filters it, and replays the builder's RUN commands verbatim with ``sh -c`` in a
temporary root, where the absolute paths the Dockerfile gives through ``ENV``/``WORKDIR`` are
placed under that root. That builds pullguard's wheel, creates the virtualenv and pip-installs the
wheel with its dependencies (from the package index, as ``docker build`` would; BuildKit's pip
cache mount is the host's pip cache). The installed ``pullguard`` then runs with the final stage's
environment, from the same path the final stage copies.

What Docker itself does is not simulated (layers, the base image's own files); the assertions on
the final stage are made on the parsed instructions: same slim base as the builder, nothing but
the virtualenv copied in, no RUN (so nothing installed, no compiler), a numeric non-root USER, the
OCI labels, and an ENTRYPOINT inside the copied virtualenv.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

OCI_LABELS = (
    "org.opencontainers.image.title",
    "org.opencontainers.image.description",
    "org.opencontainers.image.version",
    "org.opencontainers.image.revision",
    "org.opencontainers.image.created",
    "org.opencontainers.image.licenses",
    "org.opencontainers.image.source",
)
BUILD_TOOLS = re.compile(r"\b(gcc|g\+\+|cc|clang|make|build-essential|apt-get|apt|apk|dnf|yum)\b")


# --- a small Dockerfile reader --------------------------------------------------------------


@dataclass
class Instruction:
    keyword: str
    args: str
    flags: dict[str, str] = field(default_factory=dict)


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction]

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


def _logical_lines(text: str) -> Iterator[str]:
    """Dockerfile lines: comments dropped (also inside continuations), ``\\`` continuations joined."""
    current = ""
    for raw in text.splitlines():
        if raw.lstrip().startswith("#"):
            continue
        if raw.rstrip().endswith("\\"):
            current += raw.rstrip()[:-1] + " "
            continue
        current += raw
        if current.strip():
            yield current.strip()
        current = ""
    if current.strip():
        yield current.strip()


def _split_flags(args: str) -> tuple[dict[str, str], str]:
    flags: dict[str, str] = {}
    while args.startswith("--"):
        token, _, rest = args.partition(" ")
        key, _, value = token[2:].partition("=")
        flags[key] = value
        args = rest.lstrip()
    return flags, args


def parse_dockerfile(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARGs (before the first FROM) and the stages, in order."""
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in _logical_lines(text):
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            parts = args.split()
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(parts[0], name, []))
            continue
        if not stages:
            assert keyword == "ARG", f"only ARG may precede FROM, found {keyword}"
            key, _, value = args.partition("=")
            global_args[key] = value
            continue
        flags, rest = _split_flags(args) if keyword in ("RUN", "COPY") else ({}, args)
        stages[-1].instructions.append(Instruction(keyword, rest, flags))
    return global_args, stages


def pairs(args: str) -> dict[str, str]:
    """``KEY=value KEY2="quoted value"`` (ENV, LABEL, ARG) as a dict."""
    out = {}
    for token in shlex.split(args):
        key, _, value = token.partition("=")
        out[key] = value
    return out


def expand(text: str, env: Mapping[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: env.get(m[1] or m[2], ""), text)


def ignored(path: str, patterns: list[str]) -> bool:
    """``.dockerignore`` semantics: last matching pattern wins, ``!`` re-includes, a matched
    directory covers everything below it, ``*`` stays within one path segment, ``**`` spans any."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    result = False
    for raw in patterns:
        negate = raw.startswith("!")
        pattern = raw[1:] if negate else raw
        pattern = pattern.strip("/")
        regex = re.escape(pattern).replace(r"\*\*/", "(.*/)?").replace(r"\*\*", ".*").replace(r"\*", "[^/]*")
        regex = regex.replace(r"\?", "[^/]").replace(r"\[", "[").replace(r"\]", "]")
        if any(re.fullmatch(regex, c) for c in candidates):
            result = not negate
    return result


def dockerignore_patterns() -> list[str]:
    lines = DOCKERIGNORE.read_text().splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]


GLOBAL_ARGS, STAGES = parse_dockerfile(DOCKERFILE.read_text())
BUILDER = next(s for s in STAGES if s.name == "builder")
FINAL = STAGES[-1]


# --- the builder, replayed ------------------------------------------------------------------


@dataclass
class Built:
    root: Path
    venv: Path
    logs: list[str]


def _under(root: Path, path: str) -> Path:
    return root / path.lstrip("/")


def _copy_context(sources: list[str], dest: Path, patterns: list[str]) -> None:
    for source in sources:
        assert not ignored(source, patterns), f"COPY {source} is excluded by .dockerignore"
        src = ROOT / source
        if src.is_dir():
            for file in sorted(src.rglob("*")):
                rel = file.relative_to(ROOT).as_posix()
                if file.is_file() and not ignored(rel, patterns):
                    target = dest / file.relative_to(src)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(file, target)
        else:
            dest.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / src.name)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    root = tmp_path_factory.mktemp("image-root")
    shim = tmp_path_factory.mktemp("base-image-bin")
    # the base image's `python` (with pip) is this test's interpreter, a CPython 3.11
    (shim / "python").symlink_to(sys.executable)
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    env["PATH"] = f"{shim}:{env.get('PATH', '/usr/bin:/bin')}"
    workdir = root
    venv_path = ""
    patterns = dockerignore_patterns()
    logs: list[str] = []
    for ins in BUILDER.instructions:
        if ins.keyword == "ENV":
            for key, value in pairs(ins.args).items():
                env[key] = str(_under(root, value)) if value.startswith("/") else value
                if key == "VENV":
                    venv_path = value
        elif ins.keyword == "WORKDIR":
            workdir = _under(root, ins.args)
            workdir.mkdir(parents=True, exist_ok=True)
        elif ins.keyword == "COPY":
            *sources, dest = shlex.split(ins.args)
            _copy_context(sources, workdir / dest, patterns)
        elif ins.keyword == "RUN":
            command = ins.args
            # faithful replay needs every absolute path to come from ENV/WORKDIR
            assert not re.search(r"(^|[\s=\"'])/(?!dev/null)", command), f"absolute path in RUN {command}"
            proc = subprocess.run(
                ["sh", "-c", command],
                cwd=workdir,
                env=env,
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
            logs.append(f"$ {command}\n{proc.stdout[-2000:]}{proc.stderr[-4000:]}")
            assert proc.returncode == 0, logs[-1]
        else:
            pytest.fail(f"the replay does not know builder instruction {ins.keyword}")
    assert venv_path, "the builder stage must set ENV VENV"
    return Built(root, _under(root, venv_path), logs)


def test_the_builder_installs_a_working_pullguard_that_runs_with_the_final_environment(built: Built) -> None:
    env = pairs(next(i for i in FINAL.all("ENV")).args)
    (entrypoint,) = json.loads(FINAL.all("ENTRYPOINT")[0].args)
    home = built.root / "tmp"
    home.mkdir(exist_ok=True)
    run_env = {
        "PATH": env["PATH"].replace(env["VENV"], str(built.venv)),
        "HOME": str(home),
        "PYTHONDONTWRITEBYTECODE": env["PYTHONDONTWRITEBYTECODE"],
        "PYTHONUNBUFFERED": env["PYTHONUNBUFFERED"],
    }
    binary = str(_under(built.root, entrypoint))

    def pullguard(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [binary, *args], env=run_env, cwd=home, capture_output=True, text=True, timeout=60, check=False
        )

    proc = pullguard("--help")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("Usage: pullguard")
    assert "check" in proc.stdout and "explain" in proc.stdout
    # and the installed package does real work offline (parsing, identity plan, JSON rendering)
    proc = pullguard("explain", "--offline", "--output", "json", "nginx")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["reference"] == "docker.io/library/nginx:latest"


def test_the_virtualenv_holds_the_wheel_not_the_source_and_no_installer(built: Built) -> None:
    site = next(built.venv.glob("lib/python3.*/site-packages"))
    assert (site / "webhook" / "cli.py").is_file()
    dist_info = list(site.glob("pullguard-*.dist-info"))
    assert len(dist_info) == 1
    # a wheel install, not an editable link back to the build tree
    assert not list(site.glob("__editable__*")) and not list(site.glob("*.egg-link"))
    assert not (site / "webhook").is_symlink()
    assert "webhook/cli.py," in (dist_info[0] / "RECORD").read_text()
    # nothing that installs or builds packages
    assert not list(built.venv.glob("bin/pip*"))
    for tool in ("pip", "setuptools", "wheel"):
        assert not (site / tool).exists(), tool


def test_the_final_stage_starts_from_the_same_slim_python_and_copies_only_the_venv() -> None:
    assert BUILDER.base == FINAL.base == "${PYTHON_IMAGE}"
    base = GLOBAL_ARGS["PYTHON_IMAGE"]
    assert re.fullmatch(r"python:3\.11(\.\d+)?-slim(-\w+)?", base), base
    venv = pairs(next(i for i in BUILDER.all("ENV") if "VENV=" in i.args).args)["VENV"]
    copies = FINAL.all("COPY")
    assert len(copies) == 1
    assert copies[0].flags == {"from": "builder"}
    # the same path in both stages: the venv's scripts name their interpreter by absolute path
    assert shlex.split(copies[0].args) == [venv, venv]


def test_the_final_stage_installs_nothing_and_has_no_build_tools() -> None:
    assert FINAL.all("RUN") == []
    for ins in FINAL.instructions:
        if ins.keyword != "LABEL":
            assert not BUILD_TOOLS.search(ins.args), f"{ins.keyword} {ins.args}"
    # nor does the builder need any: dependencies are installed as wheels only
    installs = [i.args for i in BUILDER.all("RUN") if " install " in i.args]
    assert installs and all("--only-binary=:all:" in cmd for cmd in installs)
    assert not any(BUILD_TOOLS.search(i.args) for i in BUILDER.all("RUN"))


def test_the_image_runs_as_a_numeric_non_root_user_with_the_pullguard_entrypoint() -> None:
    (user,) = FINAL.all("USER")
    uid, _, gid = user.args.partition(":")
    assert uid.isdigit() and int(uid) > 0
    assert gid.isdigit() and int(gid) > 0
    assert FINAL.instructions[-1].keyword in ("CMD", "ENTRYPOINT")
    venv = pairs(FINAL.all("ENV")[0].args)["VENV"]
    assert json.loads(FINAL.all("ENTRYPOINT")[0].args) == [f"{venv}/bin/pullguard"]
    # the chart's containerPort and securityContext.runAsUser agree with the image
    assert FINAL.all("EXPOSE")[0].args == "8443"
    values = (ROOT / "charts" / "pullguard" / "values.yaml").read_text()
    assert f"runAsUser: {uid}" in values and f"runAsGroup: {gid}" in values


def test_the_image_carries_the_oci_labels() -> None:
    labels: dict[str, str] = {}
    for ins in FINAL.all("LABEL"):
        labels.update(pairs(ins.args))
    args = dict(GLOBAL_ARGS)
    for ins in FINAL.all("ARG"):
        key, _, value = ins.args.partition("=")
        args[key] = value or args.get(key, "")
    resolved = {k: expand(v, args) for k, v in labels.items()}
    for key in OCI_LABELS:
        assert resolved.get(key), f"label {key} missing or empty"
    assert resolved["org.opencontainers.image.licenses"] == "Apache-2.0"
    pyproject = (ROOT / "pyproject.toml").read_text()
    version = re.search(r'^version = "([^"]+)"', pyproject, re.M)
    assert version is not None
    assert resolved["org.opencontainers.image.version"] == version[1]


@pytest.mark.parametrize(
    ("path", "excluded"),
    [
        pytest.param(".venv/bin/python", True, id="venv"),
        pytest.param(".git/config", True, id="git"),
        pytest.param("tests/test_chart.py", True, id="tests"),
        pytest.param("charts/pullguard/values.yaml", True, id="charts"),
        pytest.param(".pullguard/tls.key", True, id="dev-certificates"),
        pytest.param("webhook/__pycache__/cli.cpython-311.pyc", True, id="bytecode"),
        pytest.param("pyproject.toml", False, id="pyproject"),
        pytest.param("README.md", False, id="readme"),
        pytest.param("webhook/core/reference.py", False, id="package"),
    ],
)
def test_the_build_context_is_an_allowlist(path: str, excluded: bool) -> None:
    assert ignored(path, dockerignore_patterns()) is excluded
