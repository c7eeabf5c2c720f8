"""The configuration file (DESIGN 1.3): one immutable, validated object, built once at the edge.

The CLI and the webhook read the same YAML. Every key is checked at start; a bad file is refused
with *every* problem and its key path (``cluster.nodeGroups[1].platform: ...``), as kubelet's
``validateCredentialProviderConfig`` collects a ``field.ErrorList`` instead of stopping at the
first. Unknown keys are errors too: a typo must not silently fall back to a default.

Only composition roots (cli, app, server) build a ``Config``; the engine receives plain values.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

from webhook.core.dockercfg import DockerCfgError, parse_docker_config_json, parse_dockercfg
from webhook.core.errors import ConfigError, ConfigProblem, InputError
from webhook.core.findings import Finding
from webhook.core.identity import DEFAULT_PROVIDERS, ClusterView, CredentialProvider, NodeDockerConfig
from webhook.core.nodes import FargateSelector, NodeGroup, NodeIdentity, Taint
from webhook.core.platforms import parse_platform

_ROLE_ARN = re.compile(r"^arn:aws(-[a-z]+)*:iam::\d{12}:role/[\w+=,.@/-]+$")
_SA_EMAIL = re.compile(
    r"^[a-z0-9-]+@[a-z0-9-]+\.iam\.gserviceaccount\.com$|^\d+-compute@developer\.gserviceaccount\.com$"
)
_IPV6_HOST = re.compile(r"\[[0-9a-fA-F:]+\](:\d+)?")
_HOST_PORT = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?$")
AWS_SERVICES = frozenset({"ecr", "ecr-public", "iam", "ec2", "sts", "eks"})
GCP_SERVICES = frozenset(
    {"artifactregistry", "container", "cloudresourcemanager", "iamcredentials", "iam", "metadata"}
)


def _existing_file(value: str | None, what: str = "") -> str | None:
    """Paths in the configuration are checked at start, not at the first check that needs them."""
    if value is not None and not os.path.isfile(value):
        raise ValueError(f"file {value!r} does not exist{what}")
    return value


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True, strict=False
    )


class Timeouts(_Model):
    deadline_seconds: Annotated[float, Field(gt=0, le=30)] = 8.0
    request_seconds: Annotated[float, Field(gt=0, le=30)] = 2.0

    @model_validator(mode="after")
    def _request_within_deadline(self) -> Timeouts:
        if self.request_seconds > self.deadline_seconds:
            raise ValueError("requestSeconds must not exceed deadlineSeconds")
        return self


class Network(_Model):
    allow_loopback: bool = False
    allow_link_local: bool = False
    allow_private: bool = True
    plain_http: tuple[str, ...] = ()
    ca_file: str | None = None

    @field_validator("plain_http")
    @classmethod
    def _hosts(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for i, host in enumerate(value):
            if not _HOST_PORT.match(host):
                raise ValueError(f"entry {i} ({host!r}) must be host or host:port, without scheme or path")
        return value

    @field_validator("ca_file")
    @classmethod
    def _readable(cls, value: str | None) -> str | None:
        return _existing_file(value)


class Cache(_Model):
    # DESIGN 1.3 spells these ``tagTTLSeconds``...; to_camel alone would expect ``tagTtlSeconds``.
    tag_ttl_seconds: Annotated[float, Field(ge=0, alias="tagTTLSeconds")] = 300
    digest_ttl_seconds: Annotated[float, Field(ge=0, alias="digestTTLSeconds")] = 3600
    negative_ttl_seconds: Annotated[float, Field(ge=0, alias="negativeTTLSeconds")] = 30


class NodeGroupIdentityConfig(_Model):
    aws_role_arn: str | None = None
    fargate_pod_execution_role_arn: str | None = None
    gcp_service_account: str | None = None
    scopes: tuple[str, ...] | None = None

    @field_validator("aws_role_arn", "fargate_pod_execution_role_arn")
    @classmethod
    def _arn(cls, value: str | None) -> str | None:
        if value is not None and not _ROLE_ARN.match(value):
            raise ValueError(f"{value!r} is not an IAM role ARN (arn:aws:iam::<12 digits>:role/<name>)")
        return value

    @field_validator("gcp_service_account")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value is not None and not _SA_EMAIL.match(value):
            raise ValueError(
                f"{value!r} is not a service-account email (name@project.iam.gserviceaccount.com)"
            )
        return value

    @model_validator(mode="after")
    def _one(self) -> NodeGroupIdentityConfig:
        set_ = [
            x for x in (self.aws_role_arn, self.fargate_pod_execution_role_arn, self.gcp_service_account) if x
        ]
        if len(set_) != 1:
            raise ValueError("give exactly one of awsRoleArn, fargatePodExecutionRoleArn, gcpServiceAccount")
        if self.scopes is not None and not self.gcp_service_account:
            raise ValueError("scopes apply only to gcpServiceAccount")
        return self

    def to_core(self) -> NodeIdentity:
        if self.aws_role_arn:
            return NodeIdentity("node-role", self.aws_role_arn)
        if self.fargate_pod_execution_role_arn:
            return NodeIdentity("fargate-role", self.fargate_pod_execution_role_arn)
        scopes = (
            self.scopes if self.scopes is not None else ("https://www.googleapis.com/auth/cloud-platform",)
        )
        return NodeIdentity("node-service-account", self.gcp_service_account or "", tuple(scopes))


class TaintConfig(_Model):
    key: str
    value: str = ""
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] = "NoSchedule"


class FargateSelectorConfig(_Model):
    namespace: str
    labels: dict[str, str] = Field(default_factory=dict)


class NodeGroupConfig(_Model):
    name: Annotated[str, Field(min_length=1)]
    selector: dict[str, str] = Field(default_factory=dict)
    platform: str = "linux/amd64"
    identity: NodeGroupIdentityConfig | None = None
    taints: tuple[TaintConfig, ...] = ()
    fargate_selectors: tuple[FargateSelectorConfig, ...] = ()

    @field_validator("platform")
    @classmethod
    def _platform(cls, value: str) -> str:
        try:
            parse_platform(value)
        except InputError as exc:
            raise ValueError(str(exc)) from None
        return value

    def to_core(self) -> NodeGroup:
        return NodeGroup(
            name=self.name,
            platform=parse_platform(self.platform),
            labels=dict(self.selector),
            identity=self.identity.to_core() if self.identity else None,
            taints=tuple(Taint(t.key, t.value, t.effect) for t in self.taints),
            fargate_selectors=tuple(
                FargateSelector(s.namespace, dict(s.labels)) for s in self.fargate_selectors
            ),
        )


class ProviderConfig(_Model):
    name: Annotated[str, Field(min_length=1, pattern=r"^[^/\s]+$")]
    type: Literal["ecr", "gcp", "generic"] = "generic"
    match_images: Annotated[tuple[str, ...], Field(min_length=1)]


class Cluster(_Model):
    platforms: Annotated[tuple[str, ...], Field(min_length=1)] = ("linux/amd64",)
    node_docker_config: str | None = None
    node_groups: tuple[NodeGroupConfig, ...] = ()

    @field_validator("node_docker_config")
    @classmethod
    def _docker_config_file(cls, value: str | None) -> str | None:
        return _existing_file(value, " (a copy of the nodes' /var/lib/kubelet/config.json)")

    credential_providers: Literal["default", "none"] | tuple[ProviderConfig, ...] = "default"
    #: "compatible": containerd 1.x platforms.Only (amd64 takes 386, arm64 takes arm/v8..v5);
    #: "exact": containerd 2.x transfer service (exact normalised match). See domain-facts §4.6.
    platform_match: Literal["compatible", "exact"] = "compatible"

    @field_validator("platforms")
    @classmethod
    def _platforms(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for i, p in enumerate(value):
            try:
                parse_platform(p)
            except InputError as exc:
                raise ValueError(f"entry {i}: {exc}") from None
        return value

    @field_validator("node_groups")
    @classmethod
    def _unique(cls, value: tuple[NodeGroupConfig, ...]) -> tuple[NodeGroupConfig, ...]:
        names = [g.name for g in value]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"node group names must be unique: {', '.join(dupes)}")
        return value


def _endpoint_map(value: dict[str, str], allowed: frozenset[str] | None, what: str) -> dict[str, str]:
    for key, url in value.items():
        if allowed is not None and key not in allowed:
            raise ValueError(f"unknown {what} {key!r} (known: {', '.join(sorted(allowed))})")
        if not re.match(r"^https?://[^\s/]+", url):
            raise ValueError(f"{key}: {url!r} must be an http(s) URL")
    return value


class Aws(_Model):
    region: str = "us-east-1"
    endpoints: dict[str, str] = Field(default_factory=dict)
    registry_endpoints: dict[str, str] = Field(default_factory=dict)
    #: "local": evaluate IAM and repository policies ourselves; "simulate": iam:SimulatePrincipalPolicy.
    policy_evaluation: Literal["local", "simulate"] = "local"
    #: The EKS cluster whose Fargate profiles node discovery reads (else: from the instances' tags).
    eks_cluster_name: Annotated[str, Field(pattern=r"^[0-9A-Za-z][A-Za-z0-9\-_]{0,99}$")] | None = None

    @field_validator("endpoints")
    @classmethod
    def _services(cls, value: dict[str, str]) -> dict[str, str]:
        return _endpoint_map(value, AWS_SERVICES, "service")

    @field_validator("registry_endpoints")
    @classmethod
    def _registries(cls, value: dict[str, str]) -> dict[str, str]:
        return _endpoint_map(value, None, "registry")


class GcpCluster(_Model):
    """The GKE cluster whose node pools ``cloud.google.com/gke-nodepool`` labels name (GKE API)."""

    project: Annotated[str, Field(min_length=1, pattern=r"^[a-z][a-z0-9.:-]*[a-z0-9]$")]
    location: Annotated[str, Field(min_length=1, pattern=r"^[a-z]+-[a-z]+[0-9]+(-[a-z])?$")]
    name: Annotated[str, Field(min_length=1, pattern=r"^[a-z]([-a-z0-9]*[a-z0-9])?$")]


class Gcp(_Model):
    endpoints: dict[str, str] = Field(default_factory=dict)
    registry_endpoints: dict[str, str] = Field(default_factory=dict)
    #: "iam": read IAM policies; "impersonate": generateAccessToken as the node SA and test for real.
    permission_check: Literal["iam", "impersonate"] = "iam"
    #: Node pool discovery through the GKE API (additive; None: node groups come from configuration).
    cluster: GcpCluster | None = None
    #: pullguard's own credentials: a file holding an OAuth2 access token (re-read when it changes,
    #: e.g. written by ``gcloud auth print-access-token``); None: the google-auth default chain.
    access_token_file: str | None = None

    @field_validator("access_token_file")
    @classmethod
    def _token_file(cls, value: str | None) -> str | None:
        return _existing_file(value)

    @field_validator("endpoints")
    @classmethod
    def _services(cls, value: dict[str, str]) -> dict[str, str]:
        return _endpoint_map(value, GCP_SERVICES, "service")

    @field_validator("registry_endpoints")
    @classmethod
    def _registries(cls, value: dict[str, str]) -> dict[str, str]:
        return _endpoint_map(value, None, "registry")


class Config(_Model):
    mode: Literal["enforce", "warn", "audit"] = "enforce"
    on_unknown: Literal["allow", "warn", "deny"] = "warn"
    exempt_namespaces: tuple[str, ...] = ("kube-system",)
    exempt_images: tuple[str, ...] = ()
    timeouts: Timeouts = Field(default_factory=Timeouts)
    network: Network = Field(default_factory=Network)
    cache: Cache = Field(default_factory=Cache)
    cluster: Cluster = Field(default_factory=Cluster)
    aws: Aws = Field(default_factory=Aws)
    gcp: Gcp = Field(default_factory=Gcp)

    @field_validator("exempt_images")
    @classmethod
    def _globs(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for i, g in enumerate(value):
            if not g or g != g.strip() or "://" in g:
                raise ValueError(f"entry {i} ({g!r}) must be an image glob like 'registry.k8s.io/*'")
            host, _, path = g.partition("/")
            if not host:
                raise ValueError(f"entry {i} ({g!r}) has no registry host before '/'")
            ipv6 = _IPV6_HOST.fullmatch(host) is not None
            if "?" in g or any(c in path or (c in host and not ipv6) for c in "[]"):
                raise ValueError(
                    f"entry {i} ({g!r}): only '*' wildcards are supported, as in kubelet's matchImages"
                )
        return value


#: pydantic's location tags for validators and union branches ("literal['a','b']", "tuple[X, ...]",
#: "function-after[...]"); a real key never looks like this ("[::1]:5000" starts with a bracket).
_TAG = re.compile(r"^[a-z][a-z-]*\[.*\]$")


def _loc(loc: tuple[int | str, ...]) -> tuple[str, bool]:
    """The key path of an error, and whether it went through a union branch."""
    out, branch = "", False
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _TAG.match(part):
            branch = branch or not part.startswith("function-")
        else:
            out += ("." if out else "") + part
    return out, branch


def _problems(exc: ValidationError) -> list[ConfigProblem]:
    """Every problem with its key path; the alternatives of one union become one sentence."""
    merged: dict[str, list[str]] = {}
    for err in exc.errors(include_url=False):
        path, branch = _loc(tuple(err["loc"]))
        msg = err["msg"].removeprefix("Value error, ").replace("a valid tuple", "a list")
        if err["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling against the configuration reference)"
        elif err["type"] == "literal_error":
            msg = f"{msg}, got {err.get('input')!r}"
        key = path if branch else f"{path}\0{len(merged)}"
        merged.setdefault(key, []).append(msg)
    return [ConfigProblem(key.split("\0")[0], "; or ".join(msgs)) for key, msgs in merged.items()]


def parse_config(data: Any, source: str = "<config>") -> Config:
    """Validate an already-loaded document; raises ``ConfigError`` listing every problem."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(
            source, [ConfigProblem("", f"the top level must be a mapping, found {type(data).__name__}")]
        )
    try:
        # Through JSON, strictly: "8" is not a number and "yes" not a boolean (lax mode would
        # coerce both), while YAML lists still fill tuple fields. A YAML date or other non-JSON
        # scalar becomes its text, which is right where a string is expected and refused elsewhere.
        return Config.model_validate_json(json.dumps(dict(data), default=str), strict=True)
    except ValidationError as exc:
        raise ConfigError(source, _problems(exc)) from None


def load_config(path: str | None) -> Config:
    """Read and validate the YAML file at ``path`` (None: every default)."""
    if path is None:
        return Config()
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(path, [ConfigProblem("", f"cannot read the file: {exc.strerror}")]) from None
    try:
        duplicates = _duplicate_keys(yaml.compose(text, Loader=yaml.SafeLoader))
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
        raise ConfigError(path, [ConfigProblem("", f"not valid YAML{where}")]) from None
    if duplicates:
        raise ConfigError(path, duplicates)
    return parse_config(data, path)


def _duplicate_keys(node: yaml.Node | None, path: str = "") -> list[ConfigProblem]:
    """Keys given twice in one mapping: YAML loaders keep the last silently, we refuse the file."""
    problems: list[ConfigProblem] = []
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key, value in node.value:
            name = str(key.value)
            here = f"{path}.{name}" if path else name
            if name in seen:
                problems.append(
                    ConfigProblem(
                        here, f"given twice (lines {seen[name]} and {key.start_mark.line + 1}); keep one"
                    )
                )
            seen.setdefault(name, key.start_mark.line + 1)
            problems += _duplicate_keys(value, here)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            problems += _duplicate_keys(item, f"{path}[{i}]")
    return problems


def read_node_docker_config(path: str) -> tuple[NodeDockerConfig | None, Finding | None]:
    """The node docker config kubelet would use; a bad file is a finding (kubelet logs and ignores it)."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        return None, Finding(
            "node-docker-config-unreadable", "cluster.nodeDockerConfig", f"cannot read {path}: {exc.strerror}"
        )
    try:
        entries = parse_docker_config_json(raw) if not path.endswith(".dockercfg") else parse_dockercfg(raw)
    except DockerCfgError as exc:
        return None, Finding(
            "node-docker-config-malformed",
            "cluster.nodeDockerConfig",
            f"{path}: {exc.field}: {exc.reason}; kubelet ignores this file and uses no node credentials",
        )
    return NodeDockerConfig(path, tuple(entries)), None


def providers_of(config: Config) -> tuple[CredentialProvider, ...]:
    value = config.cluster.credential_providers
    if value == "default":
        return DEFAULT_PROVIDERS
    if value == "none":
        return ()
    return tuple(CredentialProvider(p.name, p.type, tuple(p.match_images)) for p in value)


def node_groups_of(config: Config) -> tuple[NodeGroup, ...]:
    """Configured node groups, or one anonymous group per ``cluster.platforms`` entry."""
    if config.cluster.node_groups:
        return tuple(g.to_core() for g in config.cluster.node_groups)
    return tuple(NodeGroup(None, parse_platform(p)) for p in config.cluster.platforms)


def cluster_view(
    config: Config,
    *,
    pods_admitted: bool,
    groups: tuple[NodeGroup, ...] | None = None,
) -> ClusterView:
    """The planner's view of the nodes, from configuration (and discovered groups when given)."""
    node_cfg: NodeDockerConfig | None = None
    extra: list[Finding] = []
    if config.cluster.node_docker_config:
        node_cfg, finding = read_node_docker_config(config.cluster.node_docker_config)
        if finding:
            extra.append(finding)
    return ClusterView(
        groups=groups if groups else node_groups_of(config),
        node_docker_config=node_cfg,
        providers=providers_of(config),
        exempt_images=config.exempt_images,
        pods_admitted=pods_admitted,
        extra_findings=tuple(extra),
    )
