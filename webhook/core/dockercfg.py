"""Decoding docker config documents exactly as kubelet does.

What: turns the data of a pull secret (``.dockerconfigjson`` = ``{"auths": {...}}``, or the legacy
``.dockercfg`` = a bare ``{registry: entry}`` map) into :class:`AuthEntry` values, one per registry
key, with ``auth`` decoded and every password wrapped in :class:`~webhook.core.redact.Secret`.

Why: kubelet's ``MakeDockerKeyring`` fails the credential lookup of the whole pod when any pull
secret does not decode (kubernetes/kubernetes ``pkg/credentialprovider/secrets/secrets.go``), even
though the API server only checked that the data is JSON. Predicting that needs kubelet's decoder,
not a lenient one:

* Go ``encoding/json`` into ``DockerConfigJSON{Auths DockerConfig}`` (``config.go``): struct field
  names match case-insensitively (Go's fold: ``ſ`` folds to ``S``, the Kelvin sign to ``K``), unknown
  fields are ignored, a repeated key is decoded again (maps merge, strings are overwritten, ``null``
  leaves a string alone but clears a map), wrong types are errors. A type error in an outer field is
  remembered and decoding goes on; an error inside an entry (its ``UnmarshalJSON``) stops at once.
* ``DockerConfigEntry.UnmarshalJSON`` reads ``username``, ``password``, ``email`` and ``auth`` only
  (``identitytoken``/``registrytoken`` are ignored); a non-empty ``auth`` is base64-decoded and split
  at the first ``:`` and overrides ``username``/``password`` (``decodeDockerConfigFieldAuth``).
* Base64: padded ``StdEncoding`` when the trimmed value ends in ``=``, else ``RawStdEncoding``; Go's
  decoder skips ``\\r``/``\\n`` and reports "illegal base64 data at input byte N" with Go's N.

What it deliberately does not do: no file or cluster I/O, no keyring matching (``keyring.py``), and
no reproduction of Go's wording for JSON *syntax* errors (``upstream`` then carries Python's
description; kubelet's text differs). JSON nested deeper than Python's recursion limit is reported
as malformed, where Go would accept up to 10000 levels.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from webhook.core.errors import SecretMalformedError
from webhook.core.redact import Secret

__all__ = [
    "AuthEntry",
    "DockerCfgError",
    "decode_auth_field",
    "entries_from_secret",
    "parse_docker_config_json",
    "parse_dockercfg",
]

_NO_COLON_UPSTREAM = "unable to parse auth field, must be formatted as base64(username:password)"
_ENTRY_TYPE = "credentialprovider.dockerConfigEntryWithAuth"
_ENTRY_FIELDS = ("USERNAME", "PASSWORD", "EMAIL", "AUTH")
#: unicode.IsSpace for strings.TrimSpace (Python's str.isspace also counts U+001C..U+001F).
_GO_SPACE = (
    "\t\n\v\f\r \x85\xa0\u1680" + "".join(map(chr, range(0x2000, 0x200B))) + "\u2028\u2029\u202f\u205f\u3000"
)
#: Non-ASCII runes whose Go fold (ToUpper(ToLower(r))) is an ASCII letter of our field names.
_FOLD_TO_ASCII = {"\u017f": "S", "\u212a": "K", "\u0130": "I", "\u0131": "I"}
_B64 = {c: i for i, c in enumerate(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")}
_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True, slots=True)
class AuthEntry:
    """One registry entry of a docker config; ``key`` is exactly as written in the document."""

    key: str
    username: str
    password: Secret
    email: str = ""


class DockerCfgError(Exception):
    """A docker config document kubelet cannot decode.

    ``field`` is a path relative to the document (``auths["ghcr.io"].auth``, empty for the whole
    document); ``reason`` is for humans; ``upstream`` is kubelet's (Go's) error text.
    """

    def __init__(self, field: str, reason: str, upstream: str) -> None:
        super().__init__(f"{field}: {reason}" if field else reason)
        self.field = field
        self.reason = reason
        self.upstream = upstream


class _Object(list[tuple[str, Any]]):
    """A JSON object kept as its (key, value) pairs in document order, duplicates included."""


class _Number:
    """A JSON number; its value is never needed, only that it is not a string."""


_NUMBER = _Number()


def decode_auth_field(value: str) -> tuple[str, Secret]:
    """Decode an ``auth`` value into (username, password), as kubelet's ``decodeDockerConfigFieldAuth``.

    Raises :class:`DockerCfgError` with an empty ``field`` (the caller knows where the value was).
    """
    raw = value.encode("utf-8", "surrogatepass")
    decoded, bad = _go_base64(raw, padded=value.rstrip(_GO_SPACE).endswith("="))
    if bad is not None:
        raise DockerCfgError(
            "",
            f"not base64(username:password): illegal base64 at byte {bad}",
            f"illegal base64 data at input byte {bad}",
        )
    # Go keeps the bytes as they are; surrogateescape lets callers get them back exactly.
    username, colon, password = decoded.decode("utf-8", "surrogateescape").partition(":")
    if not colon:
        raise DockerCfgError(
            "", "decodes to text without ':'; expected base64(username:password)", _NO_COLON_UPSTREAM
        )
    return username, Secret(password)


def parse_docker_config_json(raw: bytes | str) -> list[AuthEntry]:
    """Entries of a ``config.json``/``.dockerconfigjson``; a document without ``auths`` has none."""
    doc = _load(raw)
    if doc is None:  # Go ignores null for a struct
        return []
    if not isinstance(doc, _Object):
        raise _type_error("", doc, "object", "Go value of type credentialprovider.DockerConfigJSON")
    auths: dict[str, AuthEntry] | None = None
    remembered: DockerCfgError | None = None  # Go's savedError: the first type error, reported last
    for raw_key, value in doc:
        key, name = _clean(raw_key), _fold(raw_key)
        problem: DockerCfgError | None = None
        if name == "AUTHS":
            if value is None:
                auths = None
            elif isinstance(value, _Object):
                auths = {} if auths is None else auths
                _decode_map(value, key, "DockerConfigJSON.auths", auths)
            else:
                where = "Go struct field DockerConfigJSON.auths of type credentialprovider.DockerConfig"
                problem = _type_error(key, value, "object", where)
        elif name == "HTTPHEADERS" and value is not None:
            problem = _check_headers(key, value)
        remembered = remembered or problem
    if remembered is not None:
        raise remembered
    return list((auths or {}).values())


def parse_dockercfg(raw: bytes | str) -> list[AuthEntry]:
    """Entries of a legacy ``.dockercfg``: a bare ``{registry: entry}`` map."""
    doc = _load(raw)
    if doc is None:
        return []
    if not isinstance(doc, _Object):
        raise _type_error("", doc, "object", "Go value of type credentialprovider.DockerConfig")
    entries: dict[str, AuthEntry] = {}
    _decode_map(doc, "", "", entries)
    return list(entries.values())


_SHAPES: tuple[tuple[str, str, Callable[[bytes | str], list[AuthEntry]]], ...] = (
    ("kubernetes.io/dockerconfigjson", ".dockerconfigjson", parse_docker_config_json),
    ("kubernetes.io/dockercfg", ".dockercfg", parse_dockercfg),
)


def entries_from_secret(
    namespace: str, name: str, secret_type: str | None, data: Mapping[str, bytes]
) -> list[AuthEntry] | None:
    """The entries kubelet reads from one pull secret, or None when kubelet ignores the secret.

    Only ``kubernetes.io/dockerconfigjson`` with a non-empty ``.dockerconfigjson`` and
    ``kubernetes.io/dockercfg`` with a non-empty ``.dockercfg`` are read (``secrets.go
    secretsToTrackedDockerConfigs``); an Opaque secret or a type/key mismatch is ignored. A decode
    failure raises :class:`SecretMalformedError`, which aborts the pod's whole lookup in kubelet.
    """
    for wanted_type, data_key, parse in _SHAPES:
        content = data.get(data_key)
        if secret_type != wanted_type or not content:
            continue
        try:
            return parse(content)
        except DockerCfgError as exc:
            field = f"{data_key} {exc.field}" if exc.field else data_key
            raise SecretMalformedError(f"{namespace}/{name}", field, exc.reason, exc.upstream) from exc
    return None


def _load(raw: bytes | str) -> Any:
    # Go reads bytes: invalid UTF-8 inside strings becomes U+FFFD, outside them it is a syntax error.
    text = raw.decode("utf-8", "surrogateescape") if isinstance(raw, bytes) else raw
    try:
        return json.loads(
            text,
            object_pairs_hook=_Object,
            parse_int=lambda _: _NUMBER,
            parse_float=lambda _: _NUMBER,
            parse_constant=_reject_constant,
        )
    except json.JSONDecodeError as exc:
        reason = f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        raise DockerCfgError("", reason, f"invalid JSON: {exc.msg} (offset {exc.pos})") from None
    except _ConstantError as exc:
        raise DockerCfgError(
            "", f"not valid JSON: {exc} is not a JSON value", f"invalid JSON: {exc}"
        ) from None
    except RecursionError:
        raise DockerCfgError("", "not valid JSON: nested too deeply", "exceeded max depth") from None


class _ConstantError(ValueError):
    """Python's json accepts NaN/Infinity; Go's does not."""


def _reject_constant(name: str) -> Any:
    raise _ConstantError(name)


def _decode_map(obj: _Object, path: str, go_field: str, into: dict[str, AuthEntry]) -> None:
    for raw_key, value in obj:
        key = _clean(raw_key)
        into[key] = _decode_entry(key, value, f"{path}[{json.dumps(key, ensure_ascii=False)}]", go_field)


def _decode_entry(key: str, value: Any, path: str, go_field: str) -> AuthEntry:
    """``DockerConfigEntry.UnmarshalJSON``: any error here stops the whole decode at once."""
    outer = f"Go struct field {go_field}" if go_field else ""
    if value is None:
        return AuthEntry(key, "", Secret(""))
    if not isinstance(value, _Object):
        raise _type_error(path, value, "object", f"{outer or 'Go value'} of type {_ENTRY_TYPE}")
    fields = dict.fromkeys(_ENTRY_FIELDS, "")
    first: DockerCfgError | None = None
    for name, item in value:
        folded = _fold(name)
        if folded not in fields or item is None:  # unknown fields ignored; null leaves a string alone
            continue
        if isinstance(item, str):
            fields[folded] = _clean(item)
        elif first is None:
            struct = f"{go_field or 'dockerConfigEntryWithAuth'}.{folded.lower()}"
            first = _type_error(
                f"{path}.{_clean(name)}", item, "string", f"Go struct field {struct} of type string"
            )
    if first is not None:
        raise first
    username, password = fields["USERNAME"], Secret(fields["PASSWORD"])
    if fields["AUTH"]:
        try:
            username, password = decode_auth_field(fields["AUTH"])
        except DockerCfgError as exc:
            raise DockerCfgError(f"{path}.auth", exc.reason, exc.upstream) from None
    return AuthEntry(key, username, password, fields["EMAIL"])


def _check_headers(key: str, value: Any) -> DockerCfgError | None:
    if not isinstance(value, _Object):
        where = "Go struct field DockerConfigJSON.HttpHeaders of type map[string]string"
        return _type_error(key, value, "object", where)
    for name, item in value:
        if item is not None and not isinstance(item, str):
            where = "Go struct field DockerConfigJSON.HttpHeaders of type string"
            return _type_error(
                f"{key}[{json.dumps(_clean(name), ensure_ascii=False)}]", item, "string", where
            )
    return None


def _type_error(path: str, value: Any, expected: str, where: str) -> DockerCfgError:
    found, go_found = _kind(value)
    return DockerCfgError(
        path, f"expected a JSON {expected}, found {found}", f"json: cannot unmarshal {go_found} into {where}"
    )


def _kind(value: Any) -> tuple[str, str]:
    if isinstance(value, _Object):
        return "object", "object"
    if isinstance(value, list):
        return "array", "array"
    if isinstance(value, str):
        return "string", "string"
    if isinstance(value, bool):
        return "boolean", "bool"
    return "number", "number"


def _fold(name: str) -> str:
    """Go's case-insensitive key fold, exact for comparisons against ASCII field names."""
    return "".join(c.upper() if c < "\x80" else _FOLD_TO_ASCII.get(c, c) for c in name)


def _clean(text: str) -> str:
    """Go replaces invalid UTF-8 and unpaired surrogate escapes in JSON strings with U+FFFD."""
    return _SURROGATE.sub("\ufffd", text)


def _go_base64(src: bytes, *, padded: bool) -> tuple[bytes, int | None]:
    """Go ``base64.(Std|RawStd)Encoding.DecodeString``: (decoded, index of the illegal byte or None)."""
    out = bytearray()
    si, n = 0, len(src)
    while si < n:
        quantum, j, dlen, trailing = [0, 0, 0, 0], 0, 4, None
        while j < 4:
            if si == n:
                if j == 0:
                    return bytes(out), None
                if j == 1 or padded:
                    return bytes(out), si - j
                dlen = j
                break
            c = src[si]
            si += 1
            if c in _B64:
                quantum[j] = _B64[c]
                j += 1
                continue
            if c in (0x0A, 0x0D):
                continue
            if not padded or c != 0x3D or j < 2:
                return bytes(out), si - 1
            if j == 2:  # "==" expected; the first "=" is consumed
                while si < n and src[si] in (0x0A, 0x0D):
                    si += 1
                if si == n:
                    return bytes(out), n
                if src[si] != 0x3D:
                    return bytes(out), si - 1
                si += 1
            while si < n and src[si] in (0x0A, 0x0D):
                si += 1
            trailing = si if si < n else None
            dlen = j
            break
        value = quantum[0] << 18 | quantum[1] << 12 | quantum[2] << 6 | quantum[3]
        out += value.to_bytes(3, "big")[: dlen - 1]
        if trailing is not None:
            return bytes(out), trailing
    return bytes(out), None
