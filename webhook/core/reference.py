"""Image references read exactly as kubelet and containerd read them.

What: ``parse_normalized_named`` restates ``ParseNormalizedNamed`` from distribution/reference
v0.6.0 (``normalize.go``), as containerd v2 and kubelet vendor it. It is built on ``Parse``
(``reference.go``) and the grammar in ``regexp.go``. Digests are checked the way
opencontainers/go-digest v1.0.0 ``Digest.Validate`` checks them. On top of that this module
gives the views pullguard needs:

- kubelet's ``ParseImageName`` (``pkg/util/parsers/parsers.go``);
- kubelet's default ``imagePullPolicy`` (``pkg/apis/core/v1/defaults.go``);
- the keyring lookup key ``Name()``;
- what containerd CRI pulls, ``ParseDockerRef``;
- the manifest reference.

Why: later decisions depend on these strings: which keyring entries match, which registry is
contacted, and whether ``:latest`` forces a pull. If the parse is only approximately right,
the verdict is wrong elsewhere. Each error carries two texts. ``upstream`` is Go's exact
message, and the conformance vectors compare against it. ``reason`` tells a person what is
wrong and where, and is shown in admission denials.

How: Go matches the whole of ``ReferenceRegexp`` leftmost-first. We split the text at its only
possible separators instead: at ``@``, then at the last ``:`` after the last ``/``, then at the
first ``/``. Each piece is then matched on its own. This gives the same answers, and a property
test checks them against the whole-pattern regexes exported below. Because nothing backtracks
across the whole input, hostile input cannot make admission slow.

Deliberately not here:
- I/O of any kind;
- mapping a registry host (``docker.io`` -> ``registry-1.docker.io`` belongs to the resolver);
- ``FamiliarMatch`` globbing;
- the ``WithTag``/``WithDigest`` builders.

Digest algorithms are the ones kubelet and containerd have registered. That is sha256, plus
sha384 and sha512, because importing Go's ``crypto/sha512`` registers both. Go's rune-wise
``strings.ToLower`` is emulated too; it differs from ``str.lower`` only for U+0130.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from webhook.core.errors import InvalidReferenceError

__all__ = [
    "DEFAULT_DOMAIN",
    "DEFAULT_TAG",
    "DIGEST_HEX_LENGTHS",
    "DIGEST_RE",
    "DOMAIN_RE",
    "IDENTIFIER_RE",
    "NAME_RE",
    "NAME_TOTAL_LENGTH_MAX",
    "REFERENCE_RE",
    "TAG_RE",
    "ImageReference",
    "ParsedReference",
    "kubelet_parse_image_name",
    "parse",
    "parse_any_reference",
    "parse_docker_ref",
    "parse_named",
    "parse_normalized_named",
]

DEFAULT_DOMAIN = "docker.io"  # normalize.go defaultDomain; "index.docker.io" is rewritten to it
DEFAULT_TAG = "latest"  # normalize.go defaultTag (TagNameOnly) and kubelet's ParseImageName
NAME_TOTAL_LENGTH_MAX = 255  # reference.go: limits the path only, never the domain
DIGEST_HEX_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}  # go-digest, when registered
_LEGACY_DOMAIN = "index.docker.io"
_LIBRARY = "library/"
_ALGORITHMS = "sha256, sha384 and sha512"

# Go error strings (reference.go; go-digest digest.go).
_ERR_FORMAT = "invalid reference format"
_ERR_UPPERCASE = "repository name must be lowercase"
_ERR_EMPTY = "repository name must have at least one component"
_ERR_TOO_LONG = f"repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters"
_ERR_NOT_CANONICAL = "repository name must be canonical"
_ERR_DIGEST_FORMAT = "invalid checksum digest format"
_ERR_DIGEST_LENGTH = "invalid checksum digest length"
_ERR_DIGEST_UNSUPPORTED = "unsupported digest algorithm"

# The grammar of regexp.go. Go's \w and [[:xdigit:]] are ASCII-only: re.ASCII + explicit classes.
_PATH_COMPONENT = "[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REMOTE_NAME = f"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_DOMAIN_COMPONENT = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_AND_PORT = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"
_TAG = r"\w[\w.-]{0,127}"
_ALGORITHM = "[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*"
_DIGEST = _ALGORITHM + ":[0-9A-Fa-f]{32,}"


def _anchored(pattern: str) -> re.Pattern[str]:
    # Go's ^...$ never matches before a trailing newline; Python's $ would, hence \A...\Z.
    return re.compile(rf"\A(?:{pattern})\Z", re.ASCII)


DOMAIN_RE = _anchored(_DOMAIN_AND_PORT)  # DomainRegexp, anchored as regexp_test.go does
NAME_RE = _anchored(rf"(?:({_DOMAIN_AND_PORT})/)?({_REMOTE_NAME})")  # anchoredNameRegexp
REFERENCE_RE = _anchored(rf"((?:{_DOMAIN_AND_PORT}/)?{_REMOTE_NAME})(?::({_TAG}))?(?:@({_DIGEST}))?")
IDENTIFIER_RE = _anchored("([a-f0-9]{64})")  # anchoredIdentifierRegexp: a bare image ID
TAG_RE = _anchored(_TAG)  # anchoredTagRegexp
DIGEST_RE = _anchored(_DIGEST)  # anchoredDigestRegexp (syntax only; go-digest validates after)
_REMOTE_NAME_RE = _anchored(_REMOTE_NAME)
_GO_DIGEST_RE = _anchored("[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+")  # go-digest DigestRegexp
_LOWER_HEX_RE = _anchored("[a-f0-9]+")
_SCHEME_RE = re.compile("[A-Za-z][A-Za-z0-9+.-]*://")
_SEPARATOR_RUN_RE = re.compile("[._-]+")
_ALGORITHM_RE = _anchored(_ALGORITHM)
_PATH_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789._-")
_HEX_CHARS = frozenset("0123456789abcdefABCDEF")


@dataclass(frozen=True, slots=True)
class ImageReference:
    """A reference as ``ParseNormalizedNamed`` returns it; build it with ``parse_normalized_named``.

    ``domain`` is empty only in one upstream quirk: the first component holds a ``.`` but is
    not a valid host (``foo_bar.com/x``). Go's ``Parse`` then reads the whole name as a path.
    """

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """``Name()``: kubelet's ``repoToPull``, the key the credential keyring is searched with."""
        return f"{self.domain}/{self.path}" if self.domain else self.path

    @property
    def pull_reference(self) -> str:
        """``ParseDockerRef``, what containerd CRI pulls: ``name@digest`` (tag dropped), else ``name:tag``."""
        if self.digest:
            return f"{self.name}@{self.digest}"
        return f"{self.name}:{self.tag or DEFAULT_TAG}"

    @property
    def manifest_reference(self) -> str:
        """The ``<ref>`` of ``/v2/<path>/manifests/<ref>``: the digest, else the tag, else ``latest``."""
        return self.digest or self.tag or DEFAULT_TAG

    @property
    def familiar_name(self) -> str:
        """``FamiliarName``: drop ``docker.io/``, and ``library/`` when one component follows it."""
        if self.domain != DEFAULT_DOMAIN:
            return self.name
        rest = self.path.removeprefix(_LIBRARY)
        return rest if rest != self.path and "/" not in rest else self.path

    @property
    def familiar_string(self) -> str:
        """``FamiliarString``: the familiar name, then ``:tag`` and ``@digest`` when present."""
        return _compose(self.familiar_name, self.tag, self.digest)

    @property
    def default_pull_policy(self) -> str:
        """``SetDefaults_Container``: ``Always`` if kubelet's tag is ``latest``, else ``IfNotPresent``."""
        latest = self.tag == DEFAULT_TAG or (self.tag is None and self.digest is None)
        return "Always" if latest else "IfNotPresent"

    @property
    def is_docker_hub(self) -> bool:
        """Whether the normalised domain is Docker Hub's (``registry-1.docker.io`` is not)."""
        return self.domain == DEFAULT_DOMAIN

    @property
    def host(self) -> str:
        """The domain without its port; an IPv6 address without its brackets."""
        return _host_and_port(self.domain)[0]

    @property
    def port(self) -> int | None:
        """The domain's port, if given. The grammar does not cap it at 65535."""
        port = _host_and_port(self.domain)[1]
        return int(port) if port else None

    def __str__(self) -> str:
        """``String()`` of the normalised reference: ``name[:tag][@digest]``."""
        return _compose(self.name, self.tag, self.digest)


@dataclass(frozen=True, slots=True)
class ParsedReference:
    """What the non-normalising ``Parse`` returns. Only the conformance tests use it.

    ``Parse`` takes the first component of any multi-component name as the domain
    (``library/nginx`` gets domain ``library``). Never use it to find the registry.
    """

    name: str
    domain: str
    path: str
    tag: str | None
    digest: str | None

    def __str__(self) -> str:
        return _compose(self.name, self.tag, self.digest)


def parse_normalized_named(text: str) -> ImageReference:
    """Parse ``text`` exactly as ``ParseNormalizedNamed`` (normalize.go) does, or raise.

    The steps, in Go's order:
    1. A bare 64-hex image ID is refused.
    2. ``splitDockerDomain`` finds the domain.
    3. The repository part before the first ``:`` must be lower case.
    4. ``Parse`` runs on ``domain + "/" + remainder``.

    ``splitDockerDomain`` reads the first component as a domain only when more components
    follow and it is ``localhost``, contains ``.`` or ``:``, or has an upper-case letter.
    Otherwise the domain is ``docker.io``. ``index.docker.io`` becomes ``docker.io``, and
    ``library/`` is added to a one-component Docker Hub path.
    """
    if IDENTIFIER_RE.match(text):
        upstream = f"invalid repository name ({text}), cannot specify 64-byte hexadecimal strings"
        reason = "a bare 64-hex string is an image ID, not a repository; pin a digest as 'name@sha256:<hex>'"
        raise InvalidReferenceError(text, reason, upstream)
    domain, remainder = _split_docker_domain(text)
    remote = remainder.partition(":")[0]
    if _go_lower(remote) != remote:
        upstream = f"invalid reference format: repository name ({remote}) must be lowercase"
        raise InvalidReferenceError(text, _uppercase_reason(remote), upstream)
    return ImageReference(*_parse(f"{domain}/{remainder}", text))


def parse_docker_ref(text: str) -> str:
    """``ParseDockerRef`` (normalize.go) as a string: what containerd CRI pulls (image_pull.go)."""
    return parse_normalized_named(text).pull_reference


def kubelet_parse_image_name(text: str) -> tuple[str, str, str]:
    """kubelet ``parsers.ParseImageName``: returns ``(Name(), tag, digest)``.

    ``tag`` is ``latest`` only when neither a tag nor a digest was given. A part that is
    absent is ``""``. kubelet wraps the same parse error in "couldn't parse image name";
    this raises the ``ParseNormalizedNamed`` error itself.
    """
    ref = parse_normalized_named(text)
    return ref.name, ref.tag or ("" if ref.digest else DEFAULT_TAG), ref.digest or ""


def parse(text: str) -> ParsedReference:
    """Non-normalising ``Parse`` (reference.go): ``ReferenceRegexp``, the 255 limit, the digest check."""
    domain, path, tag, digest = _parse(text, text)
    return ParsedReference(f"{domain}/{path}" if domain else path, domain, path, tag, digest)


def parse_any_reference(text: str) -> str:
    """``ParseAnyReference(text).String()`` (normalize.go).

    A bare 64-hex ID becomes ``sha256:<hex>``. A valid digest on its own stays as it is.
    Anything else goes through ``parse_normalized_named``.
    """
    if IDENTIFIER_RE.match(text):
        return f"sha256:{text}"
    if _digest_problem(text) is None:
        return text
    return str(parse_normalized_named(text))


def parse_named(text: str) -> ImageReference:
    """``ParseNamed`` (reference.go): ``ParseNormalizedNamed``, but ``text`` must already be canonical."""
    ref = parse_normalized_named(text)
    if str(ref) != text:
        reason = f"the reference is not in canonical form; write it as {_q(str(ref))}"
        raise InvalidReferenceError(text, reason, _ERR_NOT_CANONICAL)
    return ref


def _compose(name: str, tag: str | None, digest: str | None) -> str:
    return name + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")


def _host_and_port(domain: str) -> tuple[str, str]:
    if domain.startswith("["):
        end = domain.find("]")
        return domain[1:end], domain[end + 2 :]
    host, _, port = domain.partition(":")
    return host, port


def _go_lower(text: str) -> str:
    # Go lower-cases rune by rune with simple mappings. Python differs only for U+0130,
    # which it maps to two runes.
    return text.replace("\u0130", "i").lower()


def _split_docker_domain(name: str) -> tuple[str, str]:
    """``splitDockerDomain`` (normalize.go): (domain, remainder), the remainder still carrying tag/digest."""
    first, slash, rest = name.partition("/")
    if not slash:
        return DEFAULT_DOMAIN, _LIBRARY + name
    if first == _LEGACY_DOMAIN:
        first = DEFAULT_DOMAIN
    elif first != "localhost" and "." not in first and ":" not in first and _go_lower(first) == first:
        first, rest = DEFAULT_DOMAIN, name
    if first == DEFAULT_DOMAIN and "/" not in rest:
        rest = _LIBRARY + rest
    return first, rest


def _split(text: str) -> tuple[str, str, str | None, str | None] | None:
    """``ReferenceRegexp`` then ``anchoredNameRegexp``: (domain, path, tag, digest), or None.

    ``@`` appears only before the digest. A path never holds ``:``, so a ``:`` after the last
    ``/`` must start the tag. A domain never holds ``/``. So the leftmost-first match is forced.
    """
    name, at, digest = text.partition("@")
    if at and not DIGEST_RE.match(digest):
        return None
    tag = None
    colon = name.rfind(":")
    if colon > name.rfind("/"):
        name, tag = name[:colon], name[colon + 1 :]
        if not TAG_RE.match(tag):
            return None
    first, slash, rest = name.partition("/")
    if slash and DOMAIN_RE.match(first) and _REMOTE_NAME_RE.match(rest):
        return first, rest, tag, (digest if at else None)
    if _REMOTE_NAME_RE.match(name):
        return "", name, tag, (digest if at else None)
    return None


def _parse(text: str, shown: str) -> tuple[str, str, str | None, str | None]:
    """``Parse`` (reference.go). Errors quote ``shown``, the reference the user actually wrote."""
    parts = _split(text)
    if parts is None:
        if not text:
            raise InvalidReferenceError(shown, "the image reference is empty", _ERR_EMPTY)
        lowered = _go_lower(text)
        if lowered != text and (low := _split(lowered)) is not None:
            start = len(low[0]) + 1 if low[0] else 0  # lower-casing keeps the length (see _go_lower)
            reason = _uppercase_reason(text[start : start + len(low[1])])
            raise InvalidReferenceError(shown, reason, _ERR_UPPERCASE)
        raise InvalidReferenceError(shown, _explain(shown), _ERR_FORMAT)
    path, digest = parts[1], parts[3]
    if len(path) > NAME_TOTAL_LENGTH_MAX:
        reason = f"the repository path is {len(path)} characters; at most {NAME_TOTAL_LENGTH_MAX} are allowed"
        raise InvalidReferenceError(shown, reason, _ERR_TOO_LONG)
    if digest is not None and (problem := _digest_problem(digest)) is not None:
        raise InvalidReferenceError(shown, problem[1], problem[0])
    return parts


def _digest_problem(digest: str) -> tuple[str, str] | None:
    """go-digest ``Digest.Validate``: (upstream, reason), or None when valid and registered."""
    algorithm, _, encoded = digest.partition(":")
    if not algorithm or not encoded:
        return _ERR_DIGEST_FORMAT, f"the digest {_q(digest)} is not of the form '<algorithm>:<hex>'"
    size = DIGEST_HEX_LENGTHS.get(algorithm)
    if size is None:
        if not _GO_DIGEST_RE.match(digest):
            return (
                _ERR_DIGEST_FORMAT,
                f"the digest algorithm {_q(algorithm)} must be lower case, e.g. 'sha256'",
            )
        reason = f"the digest algorithm {_q(algorithm)} is not supported; nodes accept {_ALGORITHMS}"
        return _ERR_DIGEST_UNSUPPORTED, reason
    if len(encoded) != size:
        reason = f"the digest {_q(digest)} has {len(encoded)} hex characters; {algorithm} needs {size}"
        return _ERR_DIGEST_LENGTH, reason
    if not _LOWER_HEX_RE.match(encoded):
        return _ERR_DIGEST_FORMAT, f"the digest {_q(digest)} must be lower-case hexadecimal"
    return None


# ---- reasons: computed only after parsing failed ------------------------------------------------


def _q(text: str, limit: int = 72) -> str:
    """``text`` quoted for a message, clipped so that a hostile reference cannot flood it."""
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


def _uppercase_reason(remote: str) -> str:
    name, at, algorithm = remote.partition("@")
    if at and _go_lower(name) == name:
        return f"the digest algorithm {_q(algorithm)} must be lower case, e.g. 'sha256'"
    return (
        f"the repository path {_q(remote)} contains upper-case letters; repository names must be "
        "lower case (only the registry host may contain capitals)"
    )


def _explain(text: str) -> str:
    """Say why ``text`` does not match the grammar, naming the first part that is wrong."""
    if not text:
        return "the image reference is empty"
    if text != text.strip():
        return "the reference has leading or trailing whitespace; remove it"
    if scheme := _SCHEME_RE.match(text):
        return f"scheme {scheme.group(0)!r} is not part of an image reference; drop it"
    if any(c.isspace() for c in text):
        return "the reference contains whitespace"
    if text.startswith("[") and (problem := _explain_domain(text.partition("/")[0])):
        return problem  # before splitting at '@': a zone id may hold one
    name, at, digest = text.partition("@")
    if at and (problem := _explain_digest(digest)):
        return problem
    slash, colon = name.rfind("/"), name.rfind(":")
    if slash < 0 and name.startswith("["):
        return f"{_q(name)} is a registry host with no repository after it; add '/<repository>'"
    if colon > slash:
        name, tag = name[:colon], name[colon + 1 :]
        if problem := _explain_tag(tag):
            return problem
    if not name:
        return "the repository name is missing before the tag or digest"
    first, has_slash, rest = name.partition("/")
    hostlike = first == "localhost" or first.lower() != first or any(c in first for c in ".:[")
    if has_slash and hostlike:
        if problem := _explain_domain(first):
            return problem
        name = rest
    return _explain_path(name) or "it does not match the grammar [host[:port]/]path[:tag][@digest]"


def _explain_digest(digest: str) -> str | None:
    algorithm, colon, encoded = digest.partition(":")
    if not digest:
        return "the digest is empty after '@'"
    if "@" in digest:
        return "the reference contains more than one '@'"
    if not colon or not algorithm:
        return f"the digest {_q(digest)} has no algorithm; write it as 'sha256:<64 hex characters>'"
    if not _ALGORITHM_RE.match(algorithm):
        return f"the digest algorithm {_q(algorithm)} is malformed; use e.g. 'sha256'"
    if bad := next((c for c in encoded if c not in _HEX_CHARS), None):
        return f"the digest {_q(digest)} contains {bad!r}; the part after ':' must be hexadecimal"
    if len(encoded) < 32:
        size = DIGEST_HEX_LENGTHS.get(algorithm.lower())
        needs = f"{algorithm} needs {size}" if size else "at least 32 are required"
        return f"the digest {_q(digest)} has {len(encoded)} hex characters; {needs}"
    return None


def _explain_tag(tag: str) -> str | None:
    if not tag:
        return "the tag is empty after ':'"
    if tag[0] in ".-":
        return f"the tag starts with {tag[0]!r}; a tag must start with a letter, digit or '_'"
    if bad := next((c for c in tag if not (c.isascii() and (c.isalnum() or c in "_.-"))), None):
        return f"the tag {_q(tag)} contains {bad!r}; a tag may hold only letters, digits, '_', '.', '-'"
    if len(tag) > 128:
        return f"the tag is {len(tag)} characters; at most 128 are allowed"
    return None


def _explain_domain(domain: str) -> str | None:
    host, port = _host_and_port(domain)
    what = f"the registry host {_q(domain)}"
    if domain.startswith("["):
        if "]" not in domain:
            return f"{what} has no closing ']'"
        if "%" in host:
            return f"{what} has an IPv6 zone identifier ('%...'); zone identifiers are not allowed"
        if "." in host:
            return f"{what} embeds an IPv4 address in IPv6; write the address in hex"
        if not host or any(c not in _HEX_CHARS and c != ":" for c in host):
            return f"{what}: an IPv6 address may contain only hex digits and ':'"
        if domain[len(host) + 2 : len(host) + 3] not in ("", ":"):
            return f"{what}: write a port after the IPv6 address as ':<digits>'"
    elif ":" in port:
        return f"{what} looks like an IPv6 address; write it in brackets, e.g. '[fc00::1]:5000'"
    else:
        for label in host.split("."):
            if not label:
                return f"{what} has an empty label (a leading, trailing or doubled '.')"
            if bad := next((c for c in label if not (c.isascii() and (c.isalnum() or c == "-"))), None):
                return f"{what} contains {bad!r}; a host may hold only letters, digits, '-' and '.'"
            if "-" in (label[0], label[-1]):
                return f"{what}: the label {_q(label)} {'starts' if label[0] == '-' else 'ends'} with '-'"
    if ":" in domain.rpartition("]")[2] and not (port.isascii() and port.isdigit()):
        return f"the port {_q(port)} of {what[4:]} is not a number"
    return None


def _explain_path(path: str) -> str | None:
    if not path:
        return "the repository path is empty"
    if path.endswith("/"):
        return "the repository path ends with '/'"
    for component in path.split("/"):
        what = f"the component {_q(component)}"
        if not component:
            return "the repository path has an empty component ('//' or a leading '/')"
        if bad := next((c for c in component if c not in _PATH_CHARS), None):
            if bad.lower() != bad:
                return f"{what} contains upper-case letters; repository names must be lower case"
            return f"{what} contains {bad!r}; allowed are a-z, 0-9 and the separators '.', '_', '__', '-'"
        if component[0] in "._-" or component[-1] in "._-":
            return f"{what} {'starts' if component[0] in '._-' else 'ends'} with a separator"
        for run in _SEPARATOR_RUN_RE.findall(component):
            if run not in (".", "_", "__") and set(run) != {"-"}:
                return f"{what} contains {run!r}; only '.', '_', '__' or a run of '-' may join alphanumerics"
    return None
