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
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from webhook.core.platforms import Platform

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
class NodeGroup:
    """Nodes sharing a platform and a pull identity."""

    name: str | None
    platform: Platform
    labels: Mapping[str, str] = field(default_factory=dict)
    identity: NodeIdentity | None = None
    taints: tuple[Taint, ...] = ()
    fargate_selectors: tuple[FargateSelector, ...] = ()

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
    labels = group.effective_labels
    if any(labels.get(k) != v for k, v in node_selector.items()):
        return False
    if not _affinity_accepts(affinity, labels):
        return False
    return all(_tolerates(tolerations, t) for t in group.taints if t.effect in ("NoSchedule", "NoExecute"))


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
