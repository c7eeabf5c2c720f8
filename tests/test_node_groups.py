"""Node objects become node groups: one per (pull identity, platform), scheduled by member."""

from __future__ import annotations

from typing import Any

import pytest

from webhook.core.errors import InputError
from webhook.core.nodes import (
    NodeIdentities,
    NodeIdentity,
    accepts,
    candidate_groups,
    groups_from_nodes,
    node_object_from_dict,
)

ROLE_A = NodeIdentity("node-role", "arn:aws:iam::111122223333:role/ng-a")
ROLE_B = NodeIdentity("node-role", "arn:aws:iam::111122223333:role/ng-b")


def node(name: str, arch: str = "amd64", **labels: str) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "labels": {"kubernetes.io/arch": arch, "kubernetes.io/os": "linux", **labels},
        },
        "spec": {"providerID": f"aws:///us-east-1a/i-{name}"},
        "status": {},
    }


def test_a_node_is_read_with_platform_taints_and_provider_id() -> None:
    raw = node("n1", "arm64", zone="a")
    raw["spec"]["taints"] = [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]
    n = node_object_from_dict(raw)
    assert str(n.platform) == "linux/arm64"
    assert n.provider_id == "aws:///us-east-1a/i-n1"
    assert [(t.key, t.value, t.effect) for t in n.taints] == [("dedicated", "gpu", "NoSchedule")]


def test_the_platform_falls_back_to_node_info() -> None:
    raw = {
        "metadata": {"name": "n"},
        "status": {"nodeInfo": {"operatingSystem": "linux", "architecture": "arm64"}},
    }
    assert str(node_object_from_dict(raw).platform) == "linux/arm64"


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        pytest.param({"metadata": {}}, "metadata.name", id="no-name"),
        pytest.param({"metadata": {"name": "n", "labels": []}}, "metadata.labels", id="labels-not-object"),
        pytest.param({"metadata": {"name": "n"}, "status": {}}, "metadata.labels", id="no-architecture"),
        pytest.param(
            {"metadata": {"name": "n", "labels": {"kubernetes.io/arch": "amd64"}}, "spec": {"taints": [1]}},
            "spec.taints[0]",
            id="bad-taint",
        ),
    ],
)
def test_a_malformed_node_names_the_field(raw: dict[str, Any], field: str) -> None:
    with pytest.raises(InputError) as err:
        node_object_from_dict(raw)
    assert err.value.field == field


def test_groups_are_distinct_identity_and_platform_named_by_their_node_group_label() -> None:
    nodes = [
        node_object_from_dict(node("a1", **{"eks.amazonaws.com/nodegroup": "ng-a", "zone": "a"})),
        node_object_from_dict(node("a2", **{"eks.amazonaws.com/nodegroup": "ng-a", "zone": "b"})),
        node_object_from_dict(node("b1", "arm64", **{"eks.amazonaws.com/nodegroup": "ng-b"})),
        node_object_from_dict(node("f1", **{"eks.amazonaws.com/compute-type": "fargate"})),
    ]
    ids = NodeIdentities(by_node={"a1": ROLE_A, "a2": ROLE_A, "b1": ROLE_B})
    groups, findings = groups_from_nodes(nodes, ids)
    assert findings == ()
    assert [(g.name, str(g.platform), g.identity) for g in groups] == [
        ("ng-a", "linux/amd64", ROLE_A),
        ("ng-b", "linux/arm64", ROLE_B),
    ]
    ng_a = groups[0]
    assert "zone" not in ng_a.labels and [m.name for m in ng_a.members] == ["a1", "a2"]


def test_a_pod_can_land_on_a_group_when_one_member_accepts_it() -> None:
    nodes = [node_object_from_dict(node("a1", zone="a")), node_object_from_dict(node("a2", zone="b"))]
    (group,), _ = groups_from_nodes(nodes)
    assert accepts(group, {"zone": "b"}, {}, [])
    assert not accepts(group, {"zone": "c"}, {}, [])


def test_cordoned_nodes_are_not_candidates() -> None:
    raw = node("a1", "arm64")
    raw["spec"]["unschedulable"] = True
    groups, _ = groups_from_nodes([node_object_from_dict(raw), node_object_from_dict(node("a2"))])
    assert [str(g.platform) for g in groups] == ["linux/amd64"]


def test_tainted_members_need_a_toleration() -> None:
    raw = node("g1")
    raw["spec"]["taints"] = [{"key": "gpu", "effect": "NoSchedule"}]
    groups, _ = groups_from_nodes([node_object_from_dict(raw)])
    placement = candidate_groups(groups, "shop", {}, {}, [], {})
    assert placement.note is not None
    tolerated = candidate_groups(groups, "shop", {}, {}, [{"key": "gpu", "operator": "Exists"}], {})
    assert tolerated.note is None and len(tolerated.groups) == 1
