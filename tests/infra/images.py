"""Seed registries with tiny but genuinely pullable images over the distribution HTTP API (httpx).

Every image is a single gzip layer (one small random file, so digests never collide between tests)
plus a config whose ``rootfs.diff_ids`` and ``os``/``architecture``/``variant`` are correct —
containerd verifies diff_ids when it unpacks. Uploads are monolithic (POST then PUT with
``digest=``). Authentication follows the registry's challenge: Basic, or Bearer fetched from the
challenge realm with the registry's ``push_credentials`` (the token server's admin), so seeding
works identically against every registry mode.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import re
import secrets
import tarfile
from collections.abc import Generator, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import httpx

from tests.infra.registry import RegistryProcess

Media = Literal["oci", "docker"]

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
# Always send all four: an OCI manifest without its type in Accept is a 404 on 2.8.2, a Docker list
# without the list type silently resolves to the linux/amd64 child.
ALL_MANIFEST_TYPES = (OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST)
ACCEPT_ALL = ", ".join(ALL_MANIFEST_TYPES)

_MEDIA = {
    "oci": {"index": OCI_INDEX, "manifest": OCI_MANIFEST, "config": OCI_CONFIG, "layer": OCI_LAYER},
    "docker": {
        "index": DOCKER_LIST,
        "manifest": DOCKER_MANIFEST,
        "config": DOCKER_CONFIG,
        "layer": DOCKER_LAYER,
    },
}
_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str | None = None

    def as_dict(self) -> dict[str, str]:
        d = {"architecture": self.architecture, "os": self.os}
        if self.variant:
            d["variant"] = self.variant
        return d

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


@dataclass(frozen=True)
class PushedManifest:
    """What was stored: digest/size/media type as the registry will report them, plus context."""

    digest: str
    size: int
    media_type: str
    ref: str = ""
    """``host/repo:tag`` (or ``host/repo@digest`` when pushed without a tag)."""
    platform: Platform | None = None
    children: tuple[PushedManifest, ...] = ()

    @property
    def digest_ref(self) -> str:
        """``host/repo@sha256:…`` for by-digest pulls."""
        base = self.ref.split("@", 1)[0]
        name = base.rsplit(":", 1)[0] if base.rfind(":") > base.rfind("/") else base
        return f"{name}@{self.digest}"


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------------------- auth
class RegistryAuth(httpx.Auth):
    """Answer the registry's challenge: Basic directly, Bearer via GET on the realm with Basic creds.

    The last Bearer token is reused pre-emptively (one push = one repository = one scope), so a
    push normally costs one token request. The request body is buffered so it can be replayed.
    """

    requires_request_body = True

    def __init__(self, credentials: tuple[str, str] | None, verify: Any = True) -> None:
        self.credentials = credentials
        self.verify = verify
        self._bearer: str | None = None
        self._basic: bool = False

    def _basic_header(self) -> str:
        assert self.credentials is not None
        return "Basic " + base64.b64encode(":".join(self.credentials).encode()).decode()

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self._bearer:
            request.headers["Authorization"] = f"Bearer {self._bearer}"
        elif self._basic and self.credentials:
            request.headers["Authorization"] = self._basic_header()
        response = yield request
        if response.status_code != 401:
            return
        challenge = response.headers.get("WWW-Authenticate", "")
        scheme, _, params_text = challenge.partition(" ")
        params = dict(_CHALLENGE_PARAM.findall(params_text))
        if scheme.lower() == "basic" and self.credentials:
            self._basic = True
            request.headers["Authorization"] = self._basic_header()
            yield request
        elif scheme.lower() == "bearer" and "realm" in params:
            query = {k: v for k, v in params.items() if k in ("service", "scope")}
            headers = {"Authorization": self._basic_header()} if self.credentials else {}
            with httpx.Client(verify=self.verify, timeout=10, trust_env=False) as client:
                tok = client.get(params["realm"], params=query, headers=headers)
            tok.raise_for_status()
            body = tok.json()
            self._bearer = body.get("token") or body.get("access_token")
            request.headers["Authorization"] = f"Bearer {self._bearer}"
            yield request


def registry_client(registry: RegistryProcess, credentials: tuple[str, str] | None = None) -> httpx.Client:
    """An httpx client for ``registry`` authenticating with ``credentials`` (default: push creds)."""
    creds = credentials if credentials is not None else registry.push_credentials
    verify: Any = registry.ssl_context or True
    return httpx.Client(
        base_url=registry.url,
        auth=RegistryAuth(creds, verify),
        verify=verify,
        timeout=10,
        trust_env=False,
    )


# ---------------------------------------------------------------------------- content
def make_layer(payload: bytes | None = None, name: str = "pullguard.txt") -> tuple[bytes, bytes]:
    """A one-file tar and its gzip (mtime 0); returns ``(uncompressed_tar, gzipped)``."""
    data = payload if payload is not None else secrets.token_hex(16).encode() + b"\n"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mode = 0o644
        tar.addfile(info, io.BytesIO(data))
    raw = buf.getvalue()
    return raw, gzip.compress(raw, compresslevel=1, mtime=0)


def make_config(platform: Platform, diff_id: str) -> bytes:
    """Image config JSON; containerd checks ``rootfs.diff_ids`` against the unpacked layer."""
    cfg: dict[str, Any] = {
        **platform.as_dict(),
        "created": "2026-01-01T00:00:00Z",
        "config": {"Cmd": ["/pullguard.txt"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": "2026-01-01T00:00:00Z", "created_by": "pullguard tests"}],
    }
    return json.dumps(cfg, sort_keys=True, separators=(",", ":")).encode()


def upload_blob(client: httpx.Client, repo: str, data: bytes) -> str:
    """Monolithic upload: POST for a session, then PUT with ``digest=``.

    No HEAD-if-exists probe first: blobs are random per push anyway, and a HEAD would make the
    token registry challenge for ``pull`` only, costing a second token request for ``pull,push``.
    """
    digest = sha256_digest(data)
    start = client.post(f"/v2/{repo}/blobs/uploads/")
    _expect(start, 202, f"start upload to {repo}")
    location = start.headers["Location"]
    # Append rather than pass params=: httpx would drop the _state=… query the registry put there.
    put = client.put(
        f"{location}{'&' if '?' in location else '?'}digest={digest}",
        content=data,
        headers={"Content-Type": "application/octet-stream"},
    )
    _expect(put, 201, f"upload blob {digest} to {repo}")
    return digest


def put_manifest(client: httpx.Client, repo: str, reference: str, body: bytes, media_type: str) -> str:
    resp = client.put(f"/v2/{repo}/manifests/{reference}", content=body, headers={"Content-Type": media_type})
    _expect(resp, 201, f"put manifest {repo}:{reference}")
    digest = sha256_digest(body)
    reported = resp.headers.get("Docker-Content-Digest")
    if reported and reported != digest:
        raise AssertionError(f"registry reported digest {reported}, expected {digest}")
    return digest


def _expect(resp: httpx.Response, status: int, what: str) -> None:
    if resp.status_code != status:
        raise AssertionError(f"{what}: HTTP {resp.status_code} (wanted {status}): {resp.text[:500]}")


def _build_single(client: httpx.Client, repo: str, platform: Platform, media: Media) -> bytes:
    """Upload layer + config blobs for one platform and return the (not yet stored) manifest body."""
    types = _MEDIA[media]
    raw, gz = make_layer()
    layer_digest = upload_blob(client, repo, gz)
    config = make_config(platform, sha256_digest(raw))
    config_digest = upload_blob(client, repo, config)
    manifest = {
        "schemaVersion": 2,
        "mediaType": types["manifest"],
        "config": {"mediaType": types["config"], "digest": config_digest, "size": len(config)},
        "layers": [{"mediaType": types["layer"], "digest": layer_digest, "size": len(gz)}],
    }
    return json.dumps(manifest, separators=(",", ":")).encode()


def _ref(registry: RegistryProcess, repo: str, tag: str | None, digest: str) -> str:
    return f"{registry.host}/{repo}:{tag}" if tag else f"{registry.host}/{repo}@{digest}"


# ---------------------------------------------------------------------------- public helpers
def push_image(
    registry: RegistryProcess,
    repo: str,
    tag: str | None,
    *,
    os: str = "linux",
    arch: str = "amd64",
    variant: str | None = None,
    media: Media = "oci",
    credentials: tuple[str, str] | None = None,
) -> PushedManifest:
    """Push a single-platform image; ``tag=None`` stores it by digest only."""
    platform = Platform(os, arch, variant)
    media_type = _MEDIA[media]["manifest"]
    with registry_client(registry, credentials) as client:
        body = _build_single(client, repo, platform, media)
        digest = put_manifest(client, repo, tag or sha256_digest(body), body, media_type)
    return PushedManifest(digest, len(body), media_type, _ref(registry, repo, tag, digest), platform)


def push_index(
    registry: RegistryProcess,
    repo: str,
    tag: str,
    children: Sequence[tuple[str, str, str | None]] = (("linux", "amd64", None), ("linux", "arm64", "v8")),
    media: Media = "oci",
    *,
    credentials: tuple[str, str] | None = None,
) -> PushedManifest:
    """Push each child by digest, then the OCI index / Docker manifest list (with platforms) by tag."""
    types = _MEDIA[media]
    pushed: list[PushedManifest] = []
    entries: list[dict[str, Any]] = []
    with registry_client(registry, credentials) as client:
        for os_, arch, variant in children:
            platform = Platform(os_, arch, variant)
            body = _build_single(client, repo, platform, media)
            digest = put_manifest(client, repo, sha256_digest(body), body, types["manifest"])
            pushed.append(
                PushedManifest(
                    digest, len(body), types["manifest"], f"{registry.host}/{repo}@{digest}", platform
                )
            )
            entries.append(
                {
                    "mediaType": types["manifest"],
                    "digest": digest,
                    "size": len(body),
                    "platform": platform.as_dict(),
                }
            )
        index = {"schemaVersion": 2, "mediaType": types["index"], "manifests": entries}
        body = json.dumps(index, separators=(",", ":")).encode()
        digest = put_manifest(client, repo, tag, body, types["index"])
    return PushedManifest(
        digest, len(body), types["index"], _ref(registry, repo, tag, digest), None, tuple(pushed)
    )


def head_manifest(
    registry: RegistryProcess,
    repo: str,
    reference: str,
    *,
    credentials: tuple[str, str] | None = None,
    accept: Iterable[str] = ALL_MANIFEST_TYPES,
) -> httpx.Response:
    """HEAD a manifest with the full Accept list, authenticating like a client would."""
    with registry_client(registry, credentials) as client:
        return client.head(f"/v2/{repo}/manifests/{reference}", headers={"Accept": ", ".join(accept)})


def tag_exists(registry: RegistryProcess, repo: str, tag: str) -> bool:
    """True on 200, False on 404 (missing repo or tag); anything else is an infrastructure error."""
    resp = head_manifest(registry, repo, tag)
    if resp.status_code == 200:
        return True
    if resp.status_code == 404:
        return False
    raise AssertionError(f"HEAD {repo}:{tag} on {registry}: unexpected HTTP {resp.status_code}")
