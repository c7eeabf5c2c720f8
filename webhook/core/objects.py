"""Kubernetes objects pullguard reads besides workloads: Secrets and ServiceAccounts.

They come from three places — the input stream of ``pullguard check``, ``--secret-file`` of
``explain``, and the Kubernetes API — and are turned into the same small values here, so the
identity planner never sees raw dictionaries. A Secret's ``stringData`` is merged over ``data``
as the API server does on create (k8s.io/api core/v1 ``Secret.stringData`` doc).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from webhook.core.errors import InputError


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """Where an object came from: what the user needs to find it again."""

    api_version: str
    kind: str
    namespace: str | None
    name: str
    source: str = ""  # "rendered.yaml#3", "admission", "cluster"

    @property
    def display(self) -> str:
        ns = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind} {ns}{self.name}"


@dataclass(frozen=True, slots=True)
class SecretObject:
    """A Secret reduced to what kubelet reads from it: type and decoded data."""

    namespace: str
    name: str
    type: str | None
    data: Mapping[str, bytes] = field(repr=False)
    source: str = ""

    @property
    def qualified(self) -> str:
        return f"{self.namespace}/{self.name}"

    def __repr__(self) -> str:  # data holds credentials; never show it
        return f"SecretObject({self.qualified!r}, type={self.type!r}, keys={sorted(self.data)!r})"


@dataclass(frozen=True, slots=True)
class ServiceAccountObject:
    """A ServiceAccount reduced to its pull secret names (in order) and annotations."""

    namespace: str
    name: str
    image_pull_secrets: tuple[str, ...]
    annotations: Mapping[str, str] = field(default_factory=dict)
    source: str = ""


def _metadata(obj: Mapping[str, Any], where: str) -> tuple[str, str | None]:
    meta = obj.get("metadata")
    if not isinstance(meta, Mapping):
        raise InputError(f"{where}: metadata must be an object", "metadata")
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        raise InputError(f"{where}: metadata.name must be a non-empty string", "metadata.name")
    ns = meta.get("namespace")
    if ns is not None and not isinstance(ns, str):
        raise InputError(f"{where}: metadata.namespace must be a string", "metadata.namespace")
    return name, ns or None


def secret_from_dict(obj: Mapping[str, Any], default_namespace: str, source: str = "") -> SecretObject:
    """Read a Secret manifest; ``data`` values are base64 as the API requires.

    Raises ``InputError`` naming the field when ``data`` is not base64 or not strings.
    """
    where = f"Secret {source}".strip()
    name, ns = _metadata(obj, where)
    stype = obj.get("type")
    if stype is not None and not isinstance(stype, str):
        raise InputError(f"{where} {name}: type must be a string", "type")
    merged: dict[str, bytes] = {}
    data = obj.get("data") or {}
    if not isinstance(data, Mapping):
        raise InputError(f"{where} {name}: data must be an object", "data")
    for key, value in data.items():
        path = f'data["{key}"]'
        if value is None:
            merged[str(key)] = b""
            continue
        if not isinstance(value, str):
            raise InputError(f"{where} {name}: {path} must be a base64 string", path)
        try:
            merged[str(key)] = base64.b64decode(value.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError, ValueError):
            raise InputError(
                f"{where} {name}: {path} is not valid base64 (the API server would reject it)", path
            ) from None
    string_data = obj.get("stringData") or {}
    if not isinstance(string_data, Mapping):
        raise InputError(f"{where} {name}: stringData must be an object", "stringData")
    for key, value in string_data.items():
        if not isinstance(value, str):
            path = f'stringData["{key}"]'
            raise InputError(f"{where} {name}: {path} must be a string", path)
        merged[str(key)] = value.encode("utf-8")
    return SecretObject(ns or default_namespace, name, stype, merged, source)


def service_account_from_dict(
    obj: Mapping[str, Any], default_namespace: str, source: str = ""
) -> ServiceAccountObject:
    """Read a ServiceAccount manifest: its ``imagePullSecrets`` names in order."""
    where = f"ServiceAccount {source}".strip()
    name, ns = _metadata(obj, where)
    names: list[str] = []
    refs = obj.get("imagePullSecrets") or []
    if not isinstance(refs, list):
        raise InputError(f"{where} {name}: imagePullSecrets must be a list", "imagePullSecrets")
    for i, ref in enumerate(refs):
        if not isinstance(ref, Mapping) or not isinstance(ref.get("name", ""), str):
            path = f"imagePullSecrets[{i}].name"
            raise InputError(f"{where} {name}: {path} must be a string", path)
        names.append(str(ref.get("name", "")))
    meta = obj.get("metadata") or {}
    raw_ann = meta.get("annotations") or {}
    annotations = {str(k): str(v) for k, v in raw_ann.items()} if isinstance(raw_ann, Mapping) else {}
    return ServiceAccountObject(ns or default_namespace, name, tuple(names), annotations, source)
