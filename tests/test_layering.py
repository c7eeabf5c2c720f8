"""The architecture is enforced, not hoped for: core does no I/O, engine and adapters stay apart."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IO_LIBRARIES = [
    "httpx",
    "boto3",
    "botocore",
    "fastapi",
    "uvicorn",
    "kubernetes",
    "google",
    "socket",
    "ssl",
    "subprocess",
    "requests",
    "starlette",
    "urllib3",
    "aiohttp",
]


def test_core_imports_no_io_library() -> None:
    modules = sorted(p.stem for p in (ROOT / "webhook" / "core").glob("*.py") if p.stem != "__init__")
    code = (
        "import sys\n"
        + "".join(f"import webhook.core.{m}\n" for m in modules)
        + f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {IO_LIBRARIES!r})\n"
        + "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"webhook.core pulled in I/O libraries: {out.stdout.strip()}"


def test_import_linter_contracts_hold() -> None:
    linter = Path(sys.executable).with_name("lint-imports")
    out = subprocess.run([str(linter)], cwd=ROOT, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
