"""EKS node identities: which IAM role each node pulls as, and the cluster's Fargate profiles.

Implements ``ports.NodeIdentityResolver``. kubelet's ``ecr-credential-provider`` runs with the
node's instance credentials, i.e. the role of the EC2 instance profile (EKS "Amazon EKS node IAM
role"); a Fargate pod pulls with the pod execution role of the Fargate profile that selected it
(EKS "Amazon EKS pod execution IAM role"). So:

* a Node's ``spec.providerID`` ``aws:///<zone>/<instance-id>`` (cloud-provider-aws's format) →
  EC2 ``DescribeInstances`` (by the ``instance-id`` filter, which tolerates terminated ids; the
  zone gives the region) → ``IamInstanceProfile.Arn`` → IAM ``GetInstanceProfile`` →
  ``Roles[0].Arn``: ``NodeIdentity("node-role", <role ARN>)``. Cached: instances and profiles
  rarely change, and a fleet of 500 nodes costs three EC2 calls and one IAM call per profile;
* EKS ``ListFargateProfiles`` + ``DescribeFargateProfile`` for the cluster (``aws.eksClusterName``,
  or the ``eks:cluster-name`` / ``kubernetes.io/cluster/<name>`` tag of the instances): every
  ACTIVE profile becomes a node group with its selectors and ``NodeIdentity("fargate-role",
  podExecutionRoleArn)``; EKS Fargate runs linux/amd64 only.

Whatever cannot be resolved is a finding naming the node and the missing permission, never an
exception: those nodes keep an unknown identity and their ECR images come out ``undetermined``
with the configuration to add.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from webhook.adapters.aws.clients import AwsClients
from webhook.adapters.aws.errors import AwsCallError
from webhook.core.findings import Finding
from webhook.core.nodes import FargateSelector, NodeGroup, NodeIdentities, NodeIdentity, NodeObject
from webhook.core.platforms import Platform
from webhook.memo import Memo

_PROVIDER_ID = re.compile(r"aws:///([^/]*)/(i-[0-9a-f]+)", re.ASCII)
_REGION_OF_ZONE = re.compile(r"([a-z]{2}(?:-[a-z]+)+-\d+)", re.ASCII)
_CLUSTER_TAGS = ("eks:cluster-name", "aws:eks:cluster-name", "alpha.eksctl.io/cluster-name")
FARGATE_PLATFORM = Platform("linux", "amd64")
FILTER_CHUNK = 200
MAX_PAGES = 50


@dataclass(frozen=True, slots=True)
class _Instance:
    profile_arn: str | None
    cluster: str | None


def region_of_zone(zone: str) -> str | None:
    """``us-east-1a`` → ``us-east-1``; local and wavelength zones (``us-west-2-lax-1a``) too."""
    found = _REGION_OF_ZONE.match(zone)
    return found[1] if found else None


def _cluster_from_tags(tags: Sequence[Mapping[str, str]]) -> str | None:
    for tag in tags:
        key, value = str(tag.get("Key") or ""), str(tag.get("Value") or "")
        if key in _CLUSTER_TAGS and value:
            return value
        if key.startswith("kubernetes.io/cluster/") and value in ("owned", "shared"):
            return key.removeprefix("kubernetes.io/cluster/")
    return None


class EksNodeResolver:
    """Nodes → pull identities (EC2 instance profile roles) + Fargate profile node groups."""

    def __init__(
        self,
        clients: AwsClients,
        *,
        region: str,
        cluster_name: str | None = None,
        ttl: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._aws = clients
        self._region = region
        self._cluster = cluster_name
        self._ttl = ttl
        #: (region, instance id) -> (facts,) — a 1-tuple, so "EC2 does not know it" can be cached too
        self._instances: Memo[tuple[_Instance | None]] = Memo(ttl, clock=clock)
        self._profiles: Memo[str | None] = Memo(ttl, clock=clock)
        self._fargate: Memo[tuple[NodeGroup, ...]] = Memo(min(ttl, 60.0), clock=clock)

    async def resolve(self, nodes: Sequence[NodeObject]) -> NodeIdentities:
        findings: list[Finding] = []
        wanted: dict[str, list[tuple[NodeObject, str]]] = {}
        for node in nodes:
            if node.is_fargate:
                continue
            found = _PROVIDER_ID.fullmatch(node.provider_id)
            if found is None:
                continue  # not an EC2 node (another cloud, kind, bare metal): not ours to explain
            region = region_of_zone(found[1]) or self._region
            wanted.setdefault(region, []).append((node, found[2]))
        instances: dict[str, _Instance | None] = {}
        for region, items in wanted.items():
            try:
                instances.update(await self._describe(region, [i for _, i in items]))
            except AwsCallError as exc:
                names = ", ".join(n.name for n, _ in items[:5]) + (" …" if len(items) > 5 else "")
                findings.append(self._finding(f"the EC2 instances of nodes {names} could not be read", exc))
        # Each instance profile once, all together: a fleet shares a few profiles, and a refused
        # lookup (not cached) must not be repeated node after node while admissions wait.
        profiles = sorted({i.profile_arn for i in instances.values() if i is not None and i.profile_arn})
        roles = dict(zip(profiles, await asyncio.gather(*(self._role_of(p) for p in profiles)), strict=True))
        by_node: dict[str, NodeIdentity] = {}
        clusters: set[str] = set()
        for items in wanted.values():
            for node, instance_id in items:
                if instance_id not in instances:
                    continue
                info = instances[instance_id]
                if info is None:
                    findings.append(
                        Finding(
                            "node-identity-unknown",
                            None,
                            f"node {node.name}: EC2 has no instance {instance_id} (terminated?); its "
                            "pull role is "
                            "not known",
                        )
                    )
                    continue
                if info.cluster:
                    clusters.add(info.cluster)
                if not info.profile_arn:
                    findings.append(
                        Finding(
                            "node-identity-unknown",
                            None,
                            f"node {node.name}: instance {instance_id} has no IAM instance profile, so "
                            "kubelet's "
                            "ecr-credential-provider has no credentials there",
                        )
                    )
                    continue
                role, problem = roles[info.profile_arn]
                if role is None:
                    findings.append(Finding("node-identity-unknown", None, f"node {node.name}: {problem}"))
                    continue
                by_node[node.name] = NodeIdentity("node-role", role)
        extra, fargate_findings = await self._fargate_groups(clusters, any(n.is_fargate for n in nodes))
        findings.extend(fargate_findings)
        return NodeIdentities(by_node=by_node, extra_groups=extra, findings=tuple(findings))

    # -- EC2 ---------------------------------------------------------------------------------------

    async def _describe(self, region: str, ids: Sequence[str]) -> dict[str, _Instance | None]:
        """Instance facts for ``ids`` (None: EC2 does not know it), cached per instance."""
        out: dict[str, _Instance | None] = {}
        todo = []
        for instance_id in dict.fromkeys(ids):
            hit = self._instances.peek((region, instance_id))
            if hit is not None:
                out[instance_id] = hit[0]
            else:
                todo.append(instance_id)
        for start in range(0, len(todo), FILTER_CHUNK):
            chunk = todo[start : start + FILTER_CHUNK]
            found = await self._load_chunk(region, chunk)
            for instance_id in chunk:
                info = found.get(instance_id)
                out[instance_id] = info
                # a missing instance is remembered briefly: it may be launching
                ttl = self._ttl if info is not None else min(self._ttl, 30.0)
                self._instances.put((region, instance_id), (info,), ttl)
        return out

    async def _load_chunk(self, region: str, ids: Sequence[str]) -> dict[str, _Instance]:
        found: dict[str, _Instance] = {}
        token: str | None = None
        for _ in range(MAX_PAGES):
            extra = {"NextToken": token} if token else {}
            got = await self._aws.call(
                "ec2",
                "describe_instances",
                region,
                Filters=[{"Name": "instance-id", "Values": list(ids)}],
                **extra,
            )
            for reservation in got.get("Reservations") or []:
                for inst in reservation.get("Instances") or []:
                    profile = (inst.get("IamInstanceProfile") or {}).get("Arn")
                    found[str(inst.get("InstanceId"))] = _Instance(
                        str(profile) if profile else None, _cluster_from_tags(inst.get("Tags") or [])
                    )
            token = got.get("NextToken")
            if not token:
                break
        return found

    # -- IAM ---------------------------------------------------------------------------------------

    async def _role_of(self, profile_arn: str) -> tuple[str | None, str | None]:
        name = profile_arn.rsplit("/", 1)[-1]
        try:
            role = await self._profiles.get(profile_arn, lambda: self._load_profile(name))
        except AwsCallError as exc:
            what = (
                "may not call iam:GetInstanceProfile"
                if exc.kind in ("access", "credentials")
                else "could not read"
            )
            return None, f"pullguard {what} for instance profile {name} ({exc.reason})"
        if role is None:
            return None, f"instance profile {name} holds no role, so the node has no AWS credentials"
        return role, None

    async def _load_profile(self, name: str) -> str | None:
        got = await self._aws.call("iam", "get_instance_profile", InstanceProfileName=name)
        roles = (got.get("InstanceProfile") or {}).get("Roles") or []
        return str(roles[0].get("Arn")) if roles else None

    # -- EKS Fargate -------------------------------------------------------------------------------

    async def _fargate_groups(
        self, clusters: set[str], fargate_seen: bool
    ) -> tuple[tuple[NodeGroup, ...], list[Finding]]:
        cluster = self._cluster or (next(iter(clusters)) if len(clusters) == 1 else None)
        if cluster is None:
            if fargate_seen:
                why = (
                    f"the instances name several clusters ({', '.join(sorted(clusters))})"
                    if clusters
                    else "the cluster name is not known"
                )
                return (), [
                    Finding(
                        "fargate-profiles-unknown",
                        None,
                        f"Fargate nodes exist but {why}: set aws.eksClusterName so pullguard reads the "
                        "Fargate "
                        "profiles and their pod execution roles",
                    )
                ]
            return (), []
        try:
            return await self._fargate.get(cluster, lambda: self._load_fargate(cluster)), []
        except AwsCallError as exc:
            return (), [self._finding(f"the Fargate profiles of cluster {cluster} could not be read", exc)]

    async def _load_fargate(self, cluster: str) -> tuple[NodeGroup, ...]:
        names: list[str] = []
        token: str | None = None
        for _ in range(MAX_PAGES):
            extra = {"nextToken": token} if token else {}
            got = await self._aws.call("eks", "list_fargate_profiles", clusterName=cluster, **extra)
            names.extend(str(n) for n in got.get("fargateProfileNames") or [])
            token = got.get("nextToken")
            if not token:
                break
        groups = []
        for name in names:
            got = await self._aws.call(
                "eks", "describe_fargate_profile", clusterName=cluster, fargateProfileName=name
            )
            profile = got.get("fargateProfile") or {}
            if profile.get("status") != "ACTIVE":
                continue
            selectors = tuple(
                FargateSelector(
                    str(s.get("namespace") or ""),
                    {str(k): str(v) for k, v in (s.get("labels") or {}).items()},
                )
                for s in profile.get("selectors") or []
            )
            groups.append(
                NodeGroup(
                    name=f"fargate/{name}",
                    platform=FARGATE_PLATFORM,
                    labels={"eks.amazonaws.com/compute-type": "fargate"},
                    identity=NodeIdentity("fargate-role", str(profile.get("podExecutionRoleArn") or "")),
                    fargate_selectors=selectors,
                )
            )
        return tuple(groups)

    @staticmethod
    def _finding(what: str, exc: AwsCallError) -> Finding:
        grant = {
            "describe_instances": "ec2:DescribeInstances",
            "list_fargate_profiles": "eks:ListFargateProfiles",
            "describe_fargate_profile": "eks:DescribeFargateProfile",
        }.get(exc.operation, exc.operation)
        hint = f"; grant pullguard {grant}" if exc.kind in ("access", "credentials") else ""
        return Finding("node-identity-unknown", None, f"{what} ({exc.reason}){hint}")
