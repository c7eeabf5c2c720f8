"""Coverage-guided fuzzing with atheris (libFuzzer) of the three parsers hostile input reaches.

``make fuzz-atheris`` runs each target in its own process for a fixed number of runs
(``ATHERIS_RUNS``, default 1,000,000); it installs atheris into the virtualenv if missing (a wheel
for CPython 3.11; ``make test`` never needs it). Where hypothesis (``tests/fuzz/test_*.py``)
generates structured inputs, libFuzzer mutates raw bytes guided by the branches they reach in
pullguard's own modules (instrumented at import). Each target asserts the same properties:

* ``reference`` — only ``InvalidReferenceError`` escapes, with a reason and Go's upstream text;
  a parsed reference printed and parsed again is the same reference;
* ``dockercfg`` — ``.dockerconfigjson`` and ``.dockercfg`` bytes decode or raise
  ``DockerCfgError`` with a reason; passwords never show in ``repr``;
* ``review`` — an AdmissionReview body is read or refused as a ``BadReview`` naming a field; the
  object of a readable one is extracted or refused with an ``InputError`` naming a field.

Usage: ``.venv/bin/python tests/fuzz/atheris_targets.py TARGET -runs=N`` (libFuzzer flags after
the target); the seed corpus is ``tests/fuzz/seeds/TARGET`` (valid inputs to mutate from).
Any other exception or failed property is a crash: libFuzzer prints the input and
exits non-zero.
"""

from __future__ import annotations

import importlib
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

atheris: Any = importlib.import_module("atheris")

with atheris.instrument_imports(include=["webhook"]):
    from webhook.core.admission import BadReview, parse_review
    from webhook.core.dockercfg import DockerCfgError, parse_docker_config_json, parse_dockercfg
    from webhook.core.errors import InputError, InvalidReferenceError
    from webhook.core.reference import parse_normalized_named
    from webhook.core.workloads import extract


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def reference(data: bytes) -> None:
    text = _text(data)
    try:
        ref = parse_normalized_named(text)
    except InvalidReferenceError as exc:
        assert exc.reason and exc.upstream, exc
        return
    again = parse_normalized_named(str(ref))
    assert (again.domain, again.path, again.tag, again.digest) == (ref.domain, ref.path, ref.tag, ref.digest)


def dockercfg(data: bytes) -> None:
    parse = parse_docker_config_json if data[:1] != b"\x00" else parse_dockercfg
    try:
        entries = parse(data[1:] if data[:1] == b"\x00" else data)
    except DockerCfgError as exc:
        assert exc.reason and exc.upstream, exc
        return
    for entry in entries:
        secret = entry.password.reveal()
        assert len(secret) < 4 or secret not in repr(entry), entry


def review(data: bytes) -> None:
    parsed = parse_review(data)
    if isinstance(parsed, BadReview):
        assert parsed.message
        return
    if parsed.object is None:
        return
    try:
        extract(parsed.object, parsed.namespace or "default", "admission")
    except InputError as exc:
        assert exc.field, exc


TARGETS: dict[str, Callable[[bytes], None]] = {
    "reference": reference,
    "dockercfg": dockercfg,
    "review": review,
}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        raise SystemExit(f"usage: {sys.argv[0]} {{{','.join(TARGETS)}}} [libFuzzer flags]")
    target = TARGETS[sys.argv[1]]
    seeds = Path(__file__).with_name("seeds") / sys.argv[1]
    # libFuzzer writes new inputs into the first corpus directory: a scratch one, not the seeds
    scratch = tempfile.mkdtemp(prefix=f"pullguard-atheris-{sys.argv[1]}-")
    atheris.Setup([sys.argv[0], *sys.argv[2:], scratch, str(seeds)], target)
    atheris.Fuzz()
