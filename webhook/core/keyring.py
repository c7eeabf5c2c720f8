"""kubelet's credential keyring: which stored credentials apply to an image, in which order.

What: a re-statement of ``BasicDockerKeyring`` (kubernetes/kubernetes
``pkg/credentialprovider/keyring.go``): ``Add`` normalises each registry key, ``Lookup`` returns the
credentials of every key that ``URLsMatchStr`` accepts, in reverse-lexicographic key order, and
falls back to the ``index.docker.io`` key for Docker Hub images only when nothing matched.

Why exact: the verdict names the credential kubelet will try, so the corner cases matter:
keys are parsed with Go's ``net/url.Parse`` (``?`` starts a query, ``#`` a fragment, a ``[`` not
opening an IPv6 literal is an error), host labels are matched one by one with Go's
``path/filepath.Match``, ports must be byte-equal and the path is a plain string prefix.

What it deliberately does not do: no image-reference parsing (callers pass kubelet's
``repoToPull``, see ``reference.py``), no union with node or plugin keyrings (the identity planner
orders those), and no logging of skipped keys (``add`` returns None instead). ``net/url`` is
followed as of Go 1.24.8/1.25.2 (bracketed hosts must be IPv6 literals); Go 1.26's optional strict
handling of several colons in a host is not applied.
"""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = [
    "DEFAULT_REGISTRY_KEY",
    "Keyring",
    "KeyringMatch",
    "is_default_registry_match",
    "normalize_key",
    "url_host_and_path",
    "urls_match",
]

#: The key whose credentials kubelet falls back to for Docker Hub images (``defaultRegistryHost``).
DEFAULT_REGISTRY_KEY = "index.docker.io"

T = TypeVar("T")

_HEX = frozenset("0123456789abcdefABCDEF")
#: ASCII bytes net/url accepts unescaped in a host (``shouldEscape(c, encodeHost)`` is false).
_HOST_PUNCT = frozenset("-_.~!$&'()*+,;=:[]<>\"")
_SCHEME_TAIL = frozenset("0123456789+-.")


class _UrlError(ValueError):
    """``net/url`` refused the text; the message is Go's."""


@dataclass(frozen=True, slots=True)
class KeyringMatch(Generic[T]):
    """One credential a lookup returned, with the normalised key that matched."""

    key: str
    value: T
    fallback: bool  # matched only through the Docker Hub ``index.docker.io`` fallback


class Keyring(Generic[T]):
    """``BasicDockerKeyring``: values stored per normalised key, looked up like kubelet does."""

    __slots__ = ("_creds", "_index")

    def __init__(self) -> None:
        self._creds: dict[str, list[T]] = {}
        self._index: list[str] = []

    def add(self, raw_key: str, value: T) -> str | None:
        """Store ``value`` under the normalised key; None (and nothing stored) when kubelet skips it."""
        key = normalize_key(raw_key)
        if key is None:
            return None
        if key not in self._creds:
            self._creds[key] = []
            # sets.List() then sort.Reverse: Go compares bytes.
            self._index = sorted(self._creds, key=_enc, reverse=True)
        self._creds[key].append(value)
        return key

    @property
    def index(self) -> list[str]:
        """Normalised keys, de-duplicated, in the order ``Lookup`` tries them."""
        return list(self._index)

    def lookup(self, repo: str) -> list[KeyringMatch[T]]:
        """``BasicDockerKeyring.Lookup(repo)``: every match, or the Docker Hub fallback, or nothing."""
        found = [
            KeyringMatch(k, v, False) for k in self._index if urls_match(k, repo) for v in self._creds[k]
        ]
        if found or not is_default_registry_match(repo):
            return found
        return [
            KeyringMatch(DEFAULT_REGISTRY_KEY, v, True) for v in self._creds.get(DEFAULT_REGISTRY_KEY, ())
        ]


def normalize_key(raw: str) -> str | None:
    """The key ``BasicDockerKeyring.Add`` files ``raw`` under, or None when ``url.Parse`` fails.

    ``https://`` is prepended unless the key starts with ``http://``/``https://``; a leading
    ``/v1/`` or ``/v2/`` loses its first three characters; the key is ``host[:port]`` plus the
    path unless the path is empty or ``/``. The scheme is dropped.
    """
    value = raw if raw.startswith(("https://", "http://")) else "https://" + raw
    try:
        host, path = url_host_and_path(value)
    except ValueError:
        return None
    if path.startswith(("/v2/", "/v1/")):
        path = path[3:]
    return host + path if path not in ("", "/") else host


#: Pure and called for every (pattern, image) pair of every plan — the default credential providers
#: bring dozens of ``matchImages`` patterns — so answers are memoised (bounded; strings only).
@functools.lru_cache(maxsize=16384)
def urls_match(glob: str, target: str) -> bool:
    """kubelet ``URLsMatchStr(glob, target)``; both are schemeless, a parse error is no match.

    Ports must be string-equal, hosts must have as many ``.``-separated labels, each label is a
    Go ``filepath.Match`` pattern (case-sensitive, a malformed pattern never matches) and the
    glob's path must be a plain string prefix of the target's.
    """
    try:
        glob_host, glob_path = url_host_and_path("https://" + glob)
        target_host, target_path = url_host_and_path("https://" + target)
    except ValueError:
        return False
    glob_labels, glob_port = _split_host(glob_host)
    target_labels, target_port = _split_host(target_host)
    if glob_port != target_port or len(glob_labels) != len(target_labels):
        return False
    if not _enc(target_path).startswith(_enc(glob_path)):
        return False
    return all(_go_match(_enc(g), _enc(t)) for g, t in zip(glob_labels, target_labels, strict=True))


def is_default_registry_match(image: str) -> bool:
    """kubelet ``isDefaultRegistryMatch``: whether ``image`` names a Docker Hub repository."""
    first, slash, _ = image.partition("/")
    if not first:
        return False
    if not slash or first in ("docker.io", "index.docker.io"):
        return True
    return "." not in first and ":" not in first


@functools.lru_cache(maxsize=4096)
def url_host_and_path(raw: str) -> tuple[str, str]:
    """Go ``net/url.Parse(raw)`` reduced to ``(u.Host, u.Path)``; ValueError carries Go's message."""
    rest, _, fragment = raw.partition("#")
    try:
        host, path = _parse(rest)
    except _UrlError as exc:
        raise _UrlError(f"parse {_go_quote(rest)}: {exc}") from None
    if fragment:
        try:
            _unescape(fragment, "fragment")
        except _UrlError as exc:
            raise _UrlError(f"parse {_go_quote(raw)}: {exc}") from None
    return host, path


def _parse(raw: str) -> tuple[str, str]:
    if any(c < " " or c == "\x7f" for c in raw):
        raise _UrlError("net/url: invalid control character in URL")
    scheme, rest = _get_scheme(raw)
    rest = rest.partition("?")[0]
    if not rest.startswith("/"):
        if scheme:
            return "", ""  # opaque URL such as "mailto:x"
        if ":" in rest.partition("/")[0]:
            raise _UrlError("first path segment in URL cannot contain colon")
    host = ""
    if (scheme or not rest.startswith("///")) and rest.startswith("//"):
        authority, slash, tail = rest[2:].partition("/")
        rest = slash + tail
        host = _parse_authority(authority)
    return host, _unescape(rest, "path")


def _get_scheme(raw: str) -> tuple[str, str]:
    for i, c in enumerate(raw):
        if c.isascii() and c.isalpha():
            continue
        if c in _SCHEME_TAIL and i > 0:
            continue
        if c == ":":
            if i == 0:
                raise _UrlError("missing protocol scheme")
            return raw[:i].lower(), raw[i + 1 :]
        return "", raw
    return "", raw


def _parse_authority(authority: str) -> str:
    userinfo, at, hostport = authority.rpartition("@")
    host = _parse_host(hostport)
    if at:
        if not all(c.isascii() and (c.isalnum() or c in "-._:~!$&'()*+,;=%@") for c in userinfo):
            raise _UrlError("net/url: invalid userinfo")
        for part in userinfo.split(":", 1):
            _unescape(part, "userinfo")
    return host


def _parse_host(host: str) -> str:
    bracket = host.rfind("[")
    if bracket > 0:
        raise _UrlError("invalid IP-literal")
    if bracket == 0:
        close = host.rfind("]")
        if close < 0:
            raise _UrlError("missing ']' in host")
        port = host[close + 1 :]
        if not _valid_optional_port(port):
            raise _UrlError(f"invalid port {_go_quote(port)} after host")
        literal = host[1:close]
        zone = literal.find("%25")
        if zone >= 0:
            literal = _unescape(literal[:zone], "host") + _unescape(literal[zone:], "zone")
        else:
            literal = _unescape(literal, "host")
        try:
            address = ipaddress.ip_address(literal)
        except ValueError:
            raise _UrlError(f"invalid host: ParseAddr({_go_quote(literal)})") from None
        if address.version == 4:
            raise _UrlError("invalid IP-literal")
        return f"[{literal}]{port}"
    colon = host.rfind(":")
    if colon >= 0 and not _valid_optional_port(host[colon:]):
        raise _UrlError(f"invalid port {_go_quote(host[colon:])} after host")
    return _unescape(host, "host")


def _valid_optional_port(port: str) -> bool:
    return port == "" or (port[0] == ":" and all("0" <= c <= "9" for c in port[1:]))


def _unescape(text: str, mode: str) -> str:
    """Go ``url.unescape``: validates ``%XX`` (and host characters) and decodes the escapes."""
    out = bytearray()
    i = 0
    while i < len(text):
        c = text[i]
        if c == "%":
            escape = text[i : i + 3]
            if len(escape) < 3 or escape[1] not in _HEX or escape[2] not in _HEX:
                raise _UrlError(f"invalid URL escape {_go_quote(escape)}")
            byte = int(escape[1:], 16)
            if mode == "host" and byte < 0x80 and escape != "%25":
                raise _UrlError(f"invalid URL escape {_go_quote(escape)}")
            if mode == "zone" and escape != "%25" and byte != 0x20 and not _host_byte_ok(chr(byte)):
                raise _UrlError(f"invalid URL escape {_go_quote(escape)}")
            out.append(byte)
            i += 3
            continue
        if mode in ("host", "zone") and c < "\x80" and not _host_byte_ok(c):
            raise _UrlError(f"invalid character {_go_quote(c)} in host name")
        out += _enc(c)
        i += 1
    return out.decode("utf-8", "surrogateescape")


def _host_byte_ok(c: str) -> bool:
    return (c.isascii() and c.isalnum()) or c in _HOST_PUNCT


def _split_host(hostport: str) -> tuple[list[str], str]:
    """kubelet ``splitURL``: ``net.SplitHostPort``, or the whole host and no port when that fails."""
    host, port = hostport, ""
    last = hostport.rfind(":")
    if last >= 0:
        if hostport[0] == "[":
            end = hostport.find("]")
            ok = end >= 0 and end + 1 == last
            start, stop = 1, end + 1
            candidate = hostport[1:end] if ok else ""
        else:
            candidate = hostport[:last]
            ok = ":" not in candidate
            start, stop = 0, 0
        if ok and "[" not in hostport[start:] and "]" not in hostport[stop:]:
            host, port = candidate, hostport[last + 1 :]
    return host.split("."), port


class _BadPatternError(Exception):
    """``filepath.ErrBadPattern``."""


def _go_match(pattern: bytes, name: bytes) -> bool:
    """Go ``path/filepath.Match`` on Unix (separator ``/``); a malformed pattern is no match."""
    try:
        while pattern:
            star, chunk, pattern = _scan_chunk(pattern)
            if star and not chunk:
                return b"/" not in name
            rest = _match_chunk(chunk, name)
            if rest is not None and (not rest or pattern):
                name = rest
                continue
            if not star:
                return False
            for i in range(len(name)):  # let the star swallow i+1 bytes, never a '/'
                if name[i] == 0x2F:
                    return False
                rest = _match_chunk(chunk, name[i + 1 :])
                if rest is not None and (pattern or not rest):
                    name = rest
                    break
            else:
                return False
        return not name
    except _BadPatternError:
        return False


def _scan_chunk(pattern: bytes) -> tuple[bool, bytes, bytes]:
    stripped = pattern.lstrip(b"*")
    star, pattern = len(stripped) != len(pattern), stripped
    in_range, i = False, 0
    while i < len(pattern):
        c = pattern[i]
        if c == 0x5C and i + 1 < len(pattern):
            i += 1
        elif c == 0x5B:
            in_range = True
        elif c == 0x5D:
            in_range = False
        elif c == 0x2A and not in_range:
            break
        i += 1
    return star, pattern[:i], pattern[i:]


def _match_chunk(chunk: bytes, s: bytes) -> bytes | None:
    """Go ``matchChunk``: the unmatched rest of ``s``, or None; raises :class:`_BadPatternError`."""
    failed = False
    while chunk:
        failed = failed or not s
        c = chunk[0]
        if c == 0x5B:  # character class
            rune = 0
            if not failed:
                rune, size = _decode_rune(s)
                s = s[size:]
            chunk = chunk[1:]
            negated = chunk[:1] == b"^"
            chunk = chunk[1:] if negated else chunk
            matched, ranges = False, 0
            while not (chunk[:1] == b"]" and ranges > 0):
                lo, chunk = _get_escaped(chunk)
                hi = lo
                if chunk[0] == 0x2D:
                    hi, chunk = _get_escaped(chunk[1:])
                matched = matched or lo <= rune <= hi
                ranges += 1
            chunk = chunk[1:]
            failed = failed or matched == negated
        elif c == 0x3F:  # '?'
            if not failed:
                failed = s[0] == 0x2F
                s = s[_decode_rune(s)[1] :]
            chunk = chunk[1:]
        else:
            if c == 0x5C:
                chunk = chunk[1:]
                if not chunk:
                    raise _BadPatternError
            if not failed:
                failed = chunk[0] != s[0]
                s = s[1:]
            chunk = chunk[1:]
    return None if failed else s


def _get_escaped(chunk: bytes) -> tuple[int, bytes]:
    if not chunk or chunk[0] in (0x2D, 0x5D):
        raise _BadPatternError
    if chunk[0] == 0x5C:
        chunk = chunk[1:]
        if not chunk:
            raise _BadPatternError
    rune, size = _decode_rune(chunk)
    if (rune == 0xFFFD and size == 1) or len(chunk) == size:
        raise _BadPatternError
    return rune, chunk[size:]


def _decode_rune(data: bytes) -> tuple[int, int]:
    """Go ``utf8.DecodeRune``: (rune, size), (U+FFFD, 1) for an invalid sequence."""
    lead = data[0]
    if lead < 0x80:
        return lead, 1
    size = 2 if 0xC2 <= lead <= 0xDF else 3 if 0xE0 <= lead <= 0xEF else 4 if 0xF0 <= lead <= 0xF4 else 0
    try:
        return ord(data[:size].decode("utf-8")), size
    except (UnicodeDecodeError, TypeError):
        return 0xFFFD, 1


def _enc(text: str) -> bytes:
    """The bytes Go would hold for ``text`` (raw bytes kept by surrogateescape come back as bytes)."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")


def _go_quote(text: str) -> str:
    """``strconv.Quote``, for error messages."""
    named = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}
    out = []
    for c in text:
        code = ord(c)
        if c in '"\\':
            out.append("\\" + c)
        elif c in named:
            out.append(named[c])
        elif 0xDC80 <= code <= 0xDCFF:
            out.append(f"\\x{code - 0xDC00:02x}")
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif c.isprintable() and not 0xD800 <= code <= 0xDFFF:
            out.append(c)
        else:
            out.append(f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
    return '"' + "".join(out) + '"'
