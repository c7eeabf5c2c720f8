"""Node groups, and which of them a pod can land on.

The node pulls, not the pod (DESIGN 3.6): which identity pulls and which platform must be served
depends on the node. A *node group* is a set of nodes that share a platform and a pull identity
(an EKS managed node group, a GKE node pool, a Fargate profile, or one entry of
``cluster.platforms`` when nothing more is known). A pod can land on a group when its
``nodeSelector`` and required node affinity accept the group's labels and its tolerations cover
the group's NoSchedule/NoExecute taints (k8s scheduler NodeAffinity and TaintToleration plugins).
Fargate profiles win over node groups: the EKS Fargate scheduler takes every pod a profile's
selectors match (EKS user guide, "Fargate profile").

Labels a group does not declare are treated as absent: a pod that requires ``team=a`` is not
placed on a group whose selector says nothing about ``team``. When no group accepts the pod the
caller gets every group back with a finding, so images are still checked.

Groups discovered from Node objects (``groups_from_nodes``) keep their member nodes' labels and
taints: a pod can land on the group when it can land on *any* member (a zone selector, a label
only some nodes carry), while the pull identity and platform are the group's. Cloud adapters
turn nodes into identities (EKS: providerID -> EC2 instance profile -> role; GKE: node pool ->
service account and scopes) and hand them back as ``NodeIdentities``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from webhook.core.errors import InputError
from webhook.core.findings import Finding
from webhook.core.platforms import Platform, normalize

OS_LABEL = "kubernetes.io/os"
ARCH_LABEL = "kubernetes.io/arch"


@dataclass(frozen=True, slots=True)
class NodeIdentity:
    """Who a node group's credential providers act as.

    kind: ``node-role`` (EKS/EC2 instance role), ``fargate-role`` (pod execution role),
    ``node-service-account`` (GKE node pool service account, limited by ``scopes``).
    """

    kind: str
    principal: str
    scopes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Taint:
    key: str
    value: str = ""
    effect: str = "NoSchedule"


@dataclass(frozen=True, slots=True)
class FargateSelector:
    namespace: str
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class NodeMember:
    """One node of a discovered group: what the scheduler matches a pod against."""

    name: str
    labels: Mapping[str, str]
    taints: tuple[Taint, ...] = ()


@dataclass(frozen=True, slots=True)
class NodeGroup:
    """Nodes sharing a platform and a pull identity."""

    name: str | None
    platform: Platform
    labels: Mapping[str, str] = field(default_factory=dict)
    identity: NodeIdentity | None = None
    taints: tuple[Taint, ...] = ()
    fargate_selectors: tuple[FargateSelector, ...] = ()
    #: Discovered groups: the member nodes (a pod can land on the group if it can land on one).
    members: tuple[NodeMember, ...] = ()

    @property
    def effective_labels(self) -> dict[str, str]:
        """Declared labels plus the os/arch labels every kubelet sets from its platform."""
        out = {OS_LABEL: self.platform.os, ARCH_LABEL: self.platform.architecture}
        out.update(self.labels)
        return out

    @property
    def is_fargate(self) -> bool:
        return bool(self.fargate_selectors)

    @property
    def display(self) -> str:
        return self.name or str(self.platform)


def _expression_holds(expr: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    key = str(expr.get("key", ""))
    op = str(expr.get("operator", ""))
    values = [str(v) for v in (expr.get("values") or [])]
    present = key in labels
    if op == "In":
        return present and labels[key] in values
    if op == "NotIn":
        return not present or labels[key] not in values
    if op == "Exists":
        return present
    if op == "DoesNotExist":
        return not present
    if op in ("Gt", "Lt") and present and len(values) == 1:
        try:
            left, right = int(labels[key]), int(values[0])
        except ValueError:
            return False
        return left > right if op == "Gt" else left < right
    return False


def _affinity_accepts(affinity: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    node_aff = affinity.get("nodeAffinity") if isinstance(affinity, Mapping) else None
    required = (
        node_aff.get("requiredDuringSchedulingIgnoredDuringExecution")
        if isinstance(node_aff, Mapping)
        else None
    )
    terms = required.get("nodeSelectorTerms") if isinstance(required, Mapping) else None
    if not isinstance(terms, list) or not terms:
        return True
    for term in terms:
        if not isinstance(term, Mapping):
            continue
        exprs = term.get("matchExpressions") or []
        # matchFields select single nodes by name: not decidable per group, so they do not exclude it.
        if not exprs and not term.get("matchFields"):
            continue  # an empty term matches no objects (core/v1 NodeSelectorTerm doc)
        if all(isinstance(e, Mapping) and _expression_holds(e, labels) for e in exprs):
            return True
    return False


def _tolerates(tolerations: Sequence[Mapping[str, Any]], taint: Taint) -> bool:
    for tol in tolerations:
        effect = str(tol.get("effect") or "")
        if effect and effect != taint.effect:
            continue
        op = str(tol.get("operator") or "Equal")
        key = str(tol.get("key") or "")
        if op == "Exists":
            if not key or key == taint.key:
                return True
        elif key == taint.key and str(tol.get("value") or "") == taint.value:
            return True
    return False


def accepts(
    group: NodeGroup,
    node_selector: Mapping[str, str],
    affinity: Mapping[str, Any],
    tolerations: Sequence[Mapping[str, Any]],
) -> bool:
    """Whether the scheduler could place a pod with these constraints on ``group``."""
    if group.members:
        base = {OS_LABEL: group.platform.os, ARCH_LABEL: group.platform.architecture}
        return any(
            _node_accepts({**base, **m.labels}, m.taints, node_selector, affinity, tolerations)
            for m in group.members
        )
    return _node_accepts(group.effective_labels, group.taints, node_selector, affinity, tolerations)


def _node_accepts(
    labels: Mapping[str, str],
    taints: Sequence[Taint],
    node_selector: Mapping[str, str],
    affinity: Mapping[str, Any],
    tolerations: Sequence[Mapping[str, Any]],
) -> bool:
    if any(labels.get(k) != v for k, v in node_selector.items()):
        return False
    if not _affinity_accepts(affinity, labels):
        return False
    return all(_tolerates(tolerations, t) for t in taints if t.effect in ("NoSchedule", "NoExecute"))


def fargate_matches(group: NodeGroup, namespace: str | None, pod_labels: Mapping[str, str]) -> bool:
    """Whether a Fargate profile's selectors take a pod (namespace equal, all selector labels equal)."""
    return any(
        sel.namespace == namespace and all(pod_labels.get(k) == v for k, v in sel.labels.items())
        for sel in group.fargate_selectors
    )


@dataclass(frozen=True, slots=True)
class Placement:
    """The node groups a pod can land on, and why the choice may be imprecise."""

    groups: tuple[NodeGroup, ...]
    note: str | None = None  # set when no group accepted the pod and all are returned


def candidate_groups(
    groups: Sequence[NodeGroup],
    namespace: str | None,
    node_selector: Mapping[str, str],
    affinity: Mapping[str, Any],
    tolerations: Sequence[Mapping[str, Any]],
    pod_labels: Mapping[str, str],
) -> Placement:
    """Narrow ``groups`` to those the pod can land on (Fargate profiles first)."""
    fargate = [g for g in groups if g.is_fargate and fargate_matches(g, namespace, pod_labels)]
    if fargate:
        return Placement(tuple(fargate))
    nodes = [g for g in groups if not g.is_fargate]
    chosen = [g for g in nodes if accepts(g, node_selector, affinity, tolerations)]
    if chosen:
        return Placement(tuple(chosen))
    if not nodes:
        return Placement(tuple(groups), "no node group is configured for pods outside the Fargate profiles")
    names = ", ".join(g.display for g in nodes)
    return Placement(
        tuple(nodes),
        f"no node group accepts this pod's nodeSelector, affinity and tolerations ({names}); "
        "it may stay Pending — its images are checked against every group",
    )


# -- discovery: Node objects -> node groups ---------------------------------------------------------

#: Labels that name the group a node belongs to (first present wins).
GROUP_NAME_LABELS = (
    "eks.amazonaws.com/nodegroup",
    "cloud.google.com/gke-nodepool",
    "karpenter.sh/nodepool",
    "alpha.eksctl.io/nodegroup-name",
    "kops.k8s.io/instancegroup",
    "kubernetes.azure.com/agentpool",
)
#: The label every EKS Fargate node carries; a new pod never lands on an existing Fargate node.
FARGATE_LABEL = ("eks.amazonaws.com/compute-type", "fargate")


@dataclass(frozen=True, slots=True)
class NodeObject:
    """A Node reduced to what pull prediction needs (from the API server or a fixture)."""

    name: str
    labels: Mapping[str, str]
    platform: Platform
    taints: tuple[Taint, ...] = ()
    provider_id: str = ""  # aws:///us-east-1a/i-0abc..., gce://project/zone/instance
    unschedulable: bool = False

    @property
    def is_fargate(self) -> bool:
        return self.labels.get(FARGATE_LABEL[0]) == FARGATE_LABEL[1]


@dataclass(frozen=True, slots=True)
class NodeIdentities:
    """What a cloud adapter learned about the nodes' pull identities.

    ``by_node`` maps a node name to its identity; nodes it could not resolve are absent and
    explained in ``findings``. ``extra_groups`` are groups no Node object shows (EKS Fargate
    profiles: a new pod gets a fresh Fargate node).
    """

    by_node: Mapping[str, NodeIdentity] = field(default_factory=dict)
    extra_groups: tuple[NodeGroup, ...] = ()
    findings: tuple[Finding, ...] = ()


def node_object_from_dict(obj: Mapping[str, Any]) -> NodeObject:
    """Read a ``v1.Node`` (as JSON); raises ``InputError`` naming the field that is malformed.

    The platform comes from the ``kubernetes.io/os`` and ``kubernetes.io/arch`` labels kubelet
    sets from its own GOOS/GOARCH, falling back to ``status.nodeInfo``.
    """
    meta = obj.get("metadata")
    if not isinstance(meta, Mapping) or not isinstance(meta.get("name"), str) or not meta["name"]:
        raise InputError("Node metadata.name must be a non-empty string", "metadata.name")
    name = str(meta["name"])
    raw_labels = meta.get("labels") or {}
    if not isinstance(raw_labels, Mapping):
        raise InputError(f"Node {name}: metadata.labels must be an object", "metadata.labels")
    labels = {str(k): str(v) for k, v in raw_labels.items()}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    if not isinstance(spec, Mapping) or not isinstance(status, Mapping):
        raise InputError(f"Node {name}: spec and status must be objects", "spec")
    raw_info = status.get("nodeInfo")
    info: Mapping[str, Any] = raw_info if isinstance(raw_info, Mapping) else {}
    os_ = labels.get(OS_LABEL) or str(info.get("operatingSystem") or "linux")
    arch = labels.get(ARCH_LABEL) or str(info.get("architecture") or "")
    if not arch:
        raise InputError(
            f"Node {name}: no {ARCH_LABEL} label and no status.nodeInfo.architecture", "metadata.labels"
        )
    taints: list[Taint] = []
    for i, raw in enumerate(spec.get("taints") or []):
        if not isinstance(raw, Mapping) or not isinstance(raw.get("key"), str):
            raise InputError(
                f"Node {name}: spec.taints[{i}] must be an object with a key", f"spec.taints[{i}]"
            )
        effect = str(raw.get("effect") or "NoSchedule")
        taints.append(Taint(str(raw["key"]), str(raw.get("value") or ""), effect))
    return NodeObject(
        name=name,
        labels=labels,
        platform=normalize(Platform(os_, arch)),
        taints=tuple(taints),
        provider_id=str(spec.get("providerID") or ""),
        unschedulable=bool(spec.get("unschedulable")),
    )


def groups_from_nodes(
    nodes: Sequence[NodeObject], identities: NodeIdentities | None = None
) -> tuple[tuple[NodeGroup, ...], tuple[Finding, ...]]:
    """Node groups = distinct (pull identity, platform) among schedulable, non-Fargate nodes.

    Each group keeps its members (for scheduling), the labels and taints all members share, and
    a name from the members' node-group label (``eks.amazonaws.com/nodegroup``,
    ``cloud.google.com/gke-nodepool``, ...) or, failing that, none (it is shown by platform).
    Fargate profiles and other groups no node shows come from ``identities.extra_groups``.
    """
    ids = identities or NodeIdentities()
    buckets: dict[tuple[NodeIdentity | None, Platform], list[NodeObject]] = {}
    for node in nodes:
        if node.unschedulable or node.is_fargate:
            continue
        buckets.setdefault((ids.by_node.get(node.name), node.platform), []).append(node)
    groups: list[NodeGroup] = []
    for (identity, platform), members in buckets.items():
        names = {next((m.labels[k] for k in GROUP_NAME_LABELS if k in m.labels), "") for m in members}
        common = dict(members[0].labels)
        for m in members[1:]:
            common = {k: v for k, v in common.items() if m.labels.get(k) == v}
        shared_taints = tuple(t for t in members[0].taints if all(t in m.taints for m in members[1:]))
        groups.append(
            NodeGroup(
                name="+".join(sorted(names - {""})) or None,
                platform=platform,
                labels=common,
                identity=identity,
                taints=shared_taints,
                members=tuple(NodeMember(m.name, dict(m.labels), m.taints) for m in members),
            )
        )
    groups.sort(key=lambda g: (g.name or "", str(g.platform)))
    return tuple(groups) + tuple(ids.extra_groups), tuple(ids.findings)
