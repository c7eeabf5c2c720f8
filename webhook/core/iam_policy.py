"""IAM policy evaluation for one request, as AWS decides it — or "unknown" when it cannot be decided.

What: parse identity policies and resource policies (Version, Statement, Sid, Effect, Action /
NotAction, Resource / NotResource, Principal / NotPrincipal, Condition) and decide one request
(principal, action, resource, known context keys) the way the AWS IAM User Guide describes it
("Policy evaluation logic", "Policy evaluation for requests within a single account",
"Cross-account policy evaluation logic", "IAM JSON policy elements", "Condition operators"):

* an explicit ``Deny`` in any applicable policy wins;
* within one account the request is allowed when an identity policy **or** a resource policy
  allows it — but a resource policy whose principal is the *account* (``arn:aws:iam::A:root`` or
  ``"A"``) only delegates to the account's identity policies; it does not allow on its own;
* across accounts **both** are needed: the identity policy of the caller and a resource policy
  of the resource's owner naming the caller (or its account, or ``*``);
* a permissions boundary, when the role has one, must allow as well (it limits identity
  policies and resource policies that name the role ARN);
* actions match case-insensitively, resources case-sensitively, both with ``*`` and ``?``;
  policy variables (``${aws:username}``, ``${*}``) are substituted from known context or unknown.

Three-valued: every ``Condition`` whose key is not known (``aws:SourceVpce``,
``aws:PrincipalOrgID``, tags, time, IP) or whose operator is not evaluated makes the statement
*maybe* applicable; the answer is then ``unknown`` and names the condition (key and operator),
unless a definite statement already decides (a definite Deny; or a definite Allow with no
possible Deny).

What it deliberately does not do: no I/O (the AWS adapter reads the policies); no SCPs, RCPs,
session policies or VPC endpoint policies — pullguard cannot see them, and the ``simulate``
mode (iam:SimulatePrincipalPolicy) covers SCPs; no validation beyond what evaluation needs.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from webhook.core.errors import InputError

__all__ = [
    "ALLOWED",
    "EXPLICIT_DENY",
    "IMPLICIT_DENY",
    "UNKNOWN",
    "Condition",
    "Decision",
    "Policy",
    "PolicyError",
    "Request",
    "Statement",
    "decide",
    "parse_policy",
    "wildcard_match",
]

ALLOWED = "allowed"
EXPLICIT_DENY = "explicit-deny"
IMPLICIT_DENY = "implicit-deny"
UNKNOWN = "unknown"

#: kinds of policy, as the decision text names them
IDENTITY = "identity"
RESOURCE = "resource"
BOUNDARY = "boundary"


class PolicyError(InputError):
    """A policy document pullguard cannot read; ``field`` is the path inside the document."""


@dataclass(frozen=True, slots=True)
class Condition:
    operator: str  # as written, e.g. "StringEqualsIfExists", "ForAnyValue:StringLike"
    key: str
    values: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Principals:
    """A Principal/NotPrincipal element: ``"*"`` or ``{"AWS": [...], "Service": [...], ...}``."""

    everyone: bool = False
    aws: tuple[str, ...] = ()
    others: tuple[tuple[str, str], ...] = ()  # (Service|Federated|CanonicalUser, value)


@dataclass(frozen=True, slots=True)
class Statement:
    index: int
    sid: str | None
    effect: str  # Allow | Deny
    actions: tuple[str, ...] | None = None
    not_actions: tuple[str, ...] | None = None
    resources: tuple[str, ...] | None = None
    not_resources: tuple[str, ...] | None = None
    principals: Principals | None = None
    not_principals: Principals | None = None
    conditions: tuple[Condition, ...] = ()

    @property
    def label(self) -> str:
        return f"statement {self.sid!r}" if self.sid else f"statement #{self.index + 1}"


@dataclass(frozen=True, slots=True)
class Policy:
    """One policy document and where it comes from (named in every decision that cites it)."""

    source: str  # "inline policy pull of role ng-a", "AWS managed policy AmazonEC2ContainerRegistryReadOnly"
    kind: str  # identity | resource | boundary
    statements: tuple[Statement, ...]
    version: str = "2012-10-17"


@dataclass(frozen=True, slots=True)
class Request:
    """The request to decide. ``context`` holds the condition keys pullguard knows (lower-case
    names); an empty tuple means "known to be absent", a missing key means "not known"."""

    principal_arn: str  # the role ARN: arn:aws:iam::111122223333:role/path/name
    action: str
    resource: str
    context: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def principal_account(self) -> str:
        parts = self.principal_arn.split(":")
        return parts[4] if len(parts) > 4 else ""

    @property
    def resource_account(self) -> str:
        parts = self.resource.split(":")
        return parts[4] if len(parts) > 4 else ""


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer for one request, with what decided it.

    ``decision``: allowed | explicit-deny | implicit-deny | unknown.
    ``denied_by``: the Deny statements that apply ("statement 'NoPull' of repository policy of x").
    ``missing``: for an implicit deny, which side lacks an Allow (``identity``, ``resource``,
    ``boundary``). ``unknowns``: the conditions or elements that could not be evaluated.
    """

    decision: str
    request: Request
    denied_by: tuple[str, ...] = ()
    allowed_by: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    unknowns: tuple[str, ...] = ()
    cross_account: bool = False

    @property
    def allowed(self) -> bool:
        return self.decision == ALLOWED


# -- parsing -------------------------------------------------------------------------------------


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise PolicyError(f"{where} must be a string or a list of strings", where)


def _condition_values(value: Any, where: str) -> tuple[str, ...]:
    items = value if isinstance(value, list) else [value]
    out: list[str] = []
    for item in items:
        if isinstance(item, bool):
            out.append("true" if item else "false")
        elif isinstance(item, str | int | float):
            out.append(str(item))
        else:
            raise PolicyError(f"{where} must hold strings, numbers or booleans", where)
    return tuple(out)


def _principals(value: Any, where: str) -> Principals:
    if value == "*":
        return Principals(everyone=True)
    if not isinstance(value, Mapping):
        raise PolicyError(f'{where} must be "*" or an object like {{"AWS": [...]}}', where)
    aws: list[str] = []
    others: list[tuple[str, str]] = []
    for kind, raw in value.items():
        values = _strings(raw, f"{where}.{kind}")
        if kind == "AWS":
            aws.extend(values)
        else:
            others.extend((str(kind), v) for v in values)
    return Principals(everyone="*" in aws, aws=tuple(aws), others=tuple(others))


def _statement(raw: Any, index: int, kind: str) -> Statement:
    where = f"Statement[{index}]"
    if not isinstance(raw, Mapping):
        raise PolicyError(f"{where} must be an object", where)
    effect = raw.get("Effect")
    if effect not in ("Allow", "Deny"):
        raise PolicyError(f'{where}.Effect must be "Allow" or "Deny"', f"{where}.Effect")
    if ("Action" in raw) == ("NotAction" in raw):
        raise PolicyError(f"{where} needs exactly one of Action and NotAction", where)
    if "Resource" in raw and "NotResource" in raw:
        raise PolicyError(f"{where} may not have both Resource and NotResource", where)
    if kind != RESOURCE and "Resource" not in raw and "NotResource" not in raw:
        raise PolicyError(f"{where} needs Resource or NotResource in an identity policy", where)
    if kind == RESOURCE and ("Principal" in raw) == ("NotPrincipal" in raw):
        raise PolicyError(f"{where} needs exactly one of Principal and NotPrincipal", where)
    conditions: list[Condition] = []
    cond = raw.get("Condition") or {}
    if not isinstance(cond, Mapping):
        raise PolicyError(f"{where}.Condition must be an object", f"{where}.Condition")
    for operator, block in cond.items():
        if not isinstance(block, Mapping):
            raise PolicyError(
                f"{where}.Condition.{operator} must map keys to values", f"{where}.Condition.{operator}"
            )
        for key, values in block.items():
            conditions.append(
                Condition(str(operator), str(key), _condition_values(values, f"{where}.Condition"))
            )

    def opt(name: str) -> tuple[str, ...] | None:
        return _strings(raw[name], f"{where}.{name}") if name in raw else None

    sid = raw.get("Sid")
    return Statement(
        index=index,
        sid=str(sid) if sid not in (None, "") else None,
        effect=str(effect),
        actions=opt("Action"),
        not_actions=opt("NotAction"),
        resources=opt("Resource"),
        not_resources=opt("NotResource"),
        principals=_principals(raw["Principal"], f"{where}.Principal") if "Principal" in raw else None,
        not_principals=(
            _principals(raw["NotPrincipal"], f"{where}.NotPrincipal") if "NotPrincipal" in raw else None
        ),
        conditions=tuple(conditions),
    )


def parse_policy(document: Mapping[str, Any] | str, source: str, kind: str = IDENTITY) -> Policy:
    """Read a policy document (a JSON string, possibly URL-decoded already, or a mapping)."""
    doc: Any = document
    if isinstance(document, str):
        try:
            doc = json.loads(document)
        except json.JSONDecodeError as exc:
            raise PolicyError(f"{source} is not JSON ({exc.msg} at {exc.pos})", None) from None
    if not isinstance(doc, Mapping):
        raise PolicyError(f"{source} must be a JSON object", None)
    raw = doc.get("Statement")
    if isinstance(raw, Mapping):
        raw = [raw]
    if not isinstance(raw, list):
        raise PolicyError(f"{source}: Statement must be an object or a list", "Statement")
    try:
        statements = tuple(_statement(s, i, kind) for i, s in enumerate(raw))
    except PolicyError as exc:
        raise PolicyError(f"{source}: {exc.message}", exc.field) from None
    return Policy(source, kind, statements, str(doc.get("Version") or "2008-10-17"))


# -- matching ------------------------------------------------------------------------------------

#: True / False / None (unknown), with the reasons for None.
_Tri = tuple[bool | None, tuple[str, ...]]
_YES: _Tri = (True, ())
_NO: _Tri = (False, ())


def _kleene(parts: Iterable[_Tri], decisive: bool) -> _Tri:
    """Kleene's three-valued AND (``decisive=False``) or OR (``True``): the first decisive value
    wins at once; else unknown, with every unknown part's reasons; else the other value."""
    reasons: list[str] = []
    unknown = False
    for value, why in parts:
        if value is decisive:
            return (decisive, ())
        if value is None:
            unknown = True
            reasons.extend(why)
    return (None, tuple(reasons)) if unknown else (not decisive, ())


def _and(parts: Iterable[_Tri]) -> _Tri:
    return _kleene(parts, decisive=False)


def _or(parts: Iterable[_Tri]) -> _Tri:
    return _kleene(parts, decisive=True)


def _not(value: _Tri) -> _Tri:
    return (None if value[0] is None else not value[0], value[1])


@functools.lru_cache(maxsize=4096)
def _glob_regex(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    out = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(out, re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)


def wildcard_match(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    """IAM's ``*`` (any run, also across ``:`` and ``/``) and ``?`` (one character)."""
    return _glob_regex(pattern, ignore_case).fullmatch(value) is not None


_VARIABLE = re.compile(r"\$\{([^}]*)\}")
_LITERALS = {"*": "*", "?": "?", "$": "$"}


def _resource_matches(pattern: str, resource: str, request: Request, policy: Policy) -> _Tri:
    """A Resource pattern against the ARN, substituting policy variables (Version 2012-10-17 only)."""
    if policy.version != "2012-10-17" or "${" not in pattern:
        return (wildcard_match(pattern, resource), ())
    regex = ""
    pos = 0
    for found in _VARIABLE.finditer(pattern):
        regex += _glob_regex(pattern[pos : found.start()], False).pattern
        name = found.group(1)
        if name in _LITERALS:
            regex += re.escape(_LITERALS[name])
        else:
            values = request.context.get(name.lower())
            if values is None or len(values) != 1:
                return (None, (f"the policy variable ${{{name}}} in Resource {pattern!r}",))
            regex += re.escape(values[0])
        pos = found.end()
    regex += _glob_regex(pattern[pos:], False).pattern
    return (re.fullmatch(regex, resource, re.DOTALL) is not None, ())


def _principal_kind(principals: Principals, request: Request) -> tuple[str | None, tuple[str, ...]]:
    """How a Principal element names the caller: "direct" (the role or ``*``), "account", None,
    or "unknown" (a session of the role: which instance pulls is not known)."""
    if principals.everyone:
        return "direct", ()
    role = request.principal_arn
    account = request.principal_account
    partition = role.split(":")[1] if role.count(":") >= 5 else "aws"
    role_name = role.split(":role/", 1)[1].rsplit("/", 1)[-1] if ":role/" in role else ""
    kind: str | None = None
    for value in principals.aws:
        if value in (account, f"arn:{partition}:iam::{account}:root"):
            kind = kind or "account"
        elif value.lower() == role.lower():
            return "direct", ()
        elif value.lower().startswith(f"arn:{partition}:sts::{account}:assumed-role/{role_name.lower()}/"):
            return "unknown", (f"the principal {value} (one session of the role: which node's is not known)",)
    return kind, ()


def _statement_principal(st: Statement, request: Request) -> tuple[_Tri, str | None]:
    if st.principals is not None:
        kind, why = _principal_kind(st.principals, request)
        if kind == "unknown":
            return (None, why), None
        return ((kind is not None), ()), kind
    assert st.not_principals is not None
    kind, why = _principal_kind(st.not_principals, request)
    if kind is None:
        return _YES, "direct"
    # NotPrincipal excludes role sessions only when the session ARN (or the account) is listed as
    # well (IAM User Guide, "NotPrincipal"): too subtle to decide from the role alone.
    return (None, (f"NotPrincipal in {st.label} lists this role or its account", *why)), None


# -- conditions ----------------------------------------------------------------------------------

_STRING_OPS = {
    "stringequals": ("eq", False, False),
    "stringnotequals": ("eq", False, True),
    "stringequalsignorecase": ("eq", True, False),
    "stringnotequalsignorecase": ("eq", True, True),
    "stringlike": ("like", False, False),
    "stringnotlike": ("like", False, True),
    "arnequals": ("like", False, False),
    "arnlike": ("like", False, False),
    "arnnotequals": ("like", False, True),
    "arnnotlike": ("like", False, True),
}


def _value_matches(kind: str, ignore_case: bool, pattern: str, value: str) -> bool:
    if kind == "like":
        return wildcard_match(pattern, value, ignore_case=ignore_case)
    return pattern.lower() == value.lower() if ignore_case else pattern == value


def _condition(cond: Condition, request: Request, where: str) -> _Tri:
    op = cond.operator
    quantifier = ""
    if ":" in op:
        quantifier, op = op.split(":", 1)
        quantifier = quantifier.lower()
    base = op.lower()
    if_exists = base.endswith("ifexists") and base != "null"
    if if_exists:
        base = base[: -len("ifexists")]
    shown = f"Condition {cond.operator} {cond.key} in {where}"
    values = request.context.get(cond.key.lower())
    if values is None:
        return (None, (f"{shown}: pullguard does not know {cond.key} for a node's pull",))
    if base == "null":
        absent_wanted = [v.lower() == "true" for v in cond.values]
        return (any(w == (not values) for w in absent_wanted), ())
    if not values:
        if quantifier == "forallvalues":
            return _YES  # ForAllValues holds vacuously when the request has no value for the key
        # Key absent: IfExists and negated operators hold, the others do not (IAM "Condition operators").
        negated = base in _STRING_OPS and _STRING_OPS[base][2]
        return (if_exists or negated, ())
    if base == "bool":
        wanted = {v.lower() for v in cond.values}
        return (any(v.lower() in wanted for v in values), ())
    if base not in _STRING_OPS or quantifier not in ("", "foranyvalue", "forallvalues"):
        return (None, (f"{shown}: the operator is not evaluated by pullguard",))
    kind, ignore_case, negated = _STRING_OPS[base]

    def one(value: str) -> bool:
        hit = any(_value_matches(kind, ignore_case, p, value) for p in cond.values)
        return not hit if negated else hit

    if quantifier == "forallvalues":
        return (all(one(v) for v in values), ())
    return (any(one(v) for v in values), ())


# -- one statement, one policy -------------------------------------------------------------------


def _applies(st: Statement, policy: Policy, request: Request) -> tuple[_Tri, str | None]:
    """Whether ``st`` applies to ``request``, and (resource policies) how it names the principal."""
    action = request.action
    if st.actions is not None:
        act: _Tri = (any(wildcard_match(a, action, ignore_case=True) for a in st.actions), ())
    else:
        assert st.not_actions is not None
        act = (not any(wildcard_match(a, action, ignore_case=True) for a in st.not_actions), ())
    if act[0] is False:
        return _NO, None
    if st.resources is not None:
        res = _or(_resource_matches(r, request.resource, request, policy) for r in st.resources)
    elif st.not_resources is not None:
        res = _not(_or(_resource_matches(r, request.resource, request, policy) for r in st.not_resources))
    else:
        res = _YES  # a resource policy without Resource applies to the resource it is attached to
    principal: _Tri = _YES
    kind: str | None = None
    if policy.kind == RESOURCE:
        principal, kind = _statement_principal(st, request)
    where = f"{st.label} of {policy.source}"
    conds = _and(_condition(c, request, where) for c in st.conditions)
    return _and((act, res, principal, conds)), kind


@dataclass(frozen=True, slots=True)
class _Side:
    allow: bool | None
    allow_direct: bool | None  # resource policies: an Allow naming the role (or "*")
    deny: bool | None
    allowed_by: tuple[str, ...]
    denied_by: tuple[str, ...]
    unknowns: tuple[str, ...]


def _evaluate(policies: Sequence[Policy], request: Request) -> _Side:
    allows: list[_Tri] = []
    directs: list[_Tri] = []
    denies: list[_Tri] = []
    allowed_by: list[str] = []
    denied_by: list[str] = []
    for policy in policies:
        for st in policy.statements:
            (value, why), kind = _applies(st, policy, request)
            if value is False:
                continue
            label = f"{st.label} of {policy.source}"
            entry: _Tri = (value, why)
            if st.effect == "Deny":
                denies.append(entry)
                if value:
                    denied_by.append(label)
            else:
                allows.append(entry)
                if kind in (None, "direct") or policy.kind != RESOURCE:
                    directs.append(entry)
                if value:
                    allowed_by.append(label)
    allow, allow_why = _or(allows)
    direct, _ = _or(directs)
    deny, deny_why = _or(denies)
    unknowns = tuple(dict.fromkeys(allow_why + deny_why))
    return _Side(allow, direct, deny, tuple(allowed_by), tuple(denied_by), unknowns)


# -- the decision --------------------------------------------------------------------------------


def decide(
    request: Request,
    identity: Sequence[Policy],
    resource: Policy | None = None,
    boundary: Policy | None = None,
) -> Decision:
    """Decide ``request`` for a role with these identity policies (inline + attached, default
    versions), an optional permissions boundary and the resource's policy (None: none exists)."""
    cross = bool(request.resource_account) and request.resource_account != request.principal_account
    ident = _evaluate(identity, request)
    res = _evaluate([resource] if resource else [], request)
    bound = _evaluate([boundary], request) if boundary else None

    denied_by = ident.denied_by + res.denied_by + (bound.denied_by if bound else ())
    if denied_by:
        return Decision(EXPLICIT_DENY, request, denied_by=denied_by, cross_account=cross)

    boundary_allows: bool | None = True if bound is None else bound.allow
    if cross:
        # Both sides (IAM User Guide, cross-account evaluation); an account principal counts here.
        parts = [ident.allow, res.allow, boundary_allows]
    else:
        resource_alone = res.allow_direct
        either = (
            True
            if ident.allow is True or resource_alone is True
            else (None if None in (ident.allow, resource_alone) else False)
        )
        parts = [either, boundary_allows]
    missing: list[str] = []
    if cross:
        if ident.allow is False:
            missing.append(IDENTITY)
        if res.allow is False:
            missing.append(RESOURCE)
    elif parts[0] is False:
        missing.append(IDENTITY)
    if boundary_allows is False:
        missing.append(BOUNDARY)
    unknowns = ident.unknowns + res.unknowns + (bound.unknowns if bound else ())
    allowed_by = ident.allowed_by + res.allowed_by
    if missing:
        return Decision(
            IMPLICIT_DENY, request, allowed_by=allowed_by, missing=tuple(missing), cross_account=cross
        )
    possible_deny = ident.deny is None or res.deny is None or (bound is not None and bound.deny is None)
    if all(p is True for p in parts) and not possible_deny:
        return Decision(ALLOWED, request, allowed_by=allowed_by, cross_account=cross)
    return Decision(
        UNKNOWN,
        request,
        allowed_by=allowed_by,
        unknowns=tuple(dict.fromkeys(unknowns)) or ("a statement pullguard could not evaluate",),
        cross_account=cross,
    )
