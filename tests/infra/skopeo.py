"""skopeo 1.9 as a second real registry client (``skopeo inspect``).

Runs with an empty auth file so credentials lying around on the host can never change a result,
and without proxies (everything is on 127.0.0.1).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.infra._process import clean_env

SKOPEO_BIN = "skopeo"


def inspect(
    ref: str,
    *,
    creds: tuple[str, str] | str | None = None,
    tls_verify: bool = False,
    cert_dir: Path | str | None = None,
    override_arch: str | None = None,
    raw: bool = False,
    timeout: float = 30.0,
) -> tuple[bool, str]:
    """``skopeo inspect docker://ref`` → ``(True, stdout)`` or ``(False, reason)``.

    ``reason`` is skopeo's fatal message (e.g. ``…: manifest unknown: manifest unknown``).
    ``creds`` is ``(user, password)`` or ``"user:password"``. ``cert_dir`` must contain ``ca.crt``
    (see ``RegistryProcess.cert_dir``) and implies TLS verification.
    """
    if shutil.which(SKOPEO_BIN) is None:
        raise RuntimeError("skopeo not found (apt-get install skopeo)")
    target = ref if ref.startswith("docker://") else f"docker://{ref}"
    with tempfile.TemporaryDirectory(prefix="pg-skopeo-") as tmp:
        authfile = Path(tmp) / "auth.json"
        authfile.write_text('{"auths": {}}')
        args = [SKOPEO_BIN]
        if override_arch:
            args += ["--override-arch", override_arch]
        args += ["inspect", "--authfile", str(authfile), "--retry-times", "0"]
        if cert_dir is not None:
            args += ["--cert-dir", str(cert_dir), "--tls-verify=true"]
        else:
            args.append(f"--tls-verify={'true' if tls_verify else 'false'}")
        if creds is not None:
            args += ["--creds", creds if isinstance(creds, str) else f"{creds[0]}:{creds[1]}"]
        if raw:
            args.append("--raw")
        args.append(target)
        try:
            r = subprocess.run(
                args, capture_output=True, text=True, timeout=timeout, env=clean_env(), check=False
            )
        except subprocess.TimeoutExpired:
            return False, f"skopeo inspect timed out after {timeout}s"
    if r.returncode == 0:
        return True, r.stdout
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    return False, (lines[-1] if lines else f"exit code {r.returncode}")
