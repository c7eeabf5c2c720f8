"""Find every image of a Pod or pod template, with its exact field path.

kubelet pulls the images of containers, init containers, ephemeral containers and image volumes
through the same path (pkg/kubelet/images/image_manager.go; the ``ImageVolumeSource.reference``
API doc says its pull secrets are assembled the same way), so all four are checked. Each image
keeps the field path a user would type (``spec.template.spec.initContainers[1].image``), which
every finding and denial names.

Known workload kinds map to the place of their pod spec; any other kind whose
``spec.template.spec.containers`` is a list (Argo Rollouts, OpenKruise CloneSets, ...) is treated
as a workload too, because that is where every such controller keeps its template.

This module does not parse the references (``reference``) nor decide credentials (``identity``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from webhook.core.errors import InputError
from webhook.core.findings import Finding
from webhook.core.objects import ObjectRef

#: kind -> path of the PodSpec inside the object.
SPEC_PATHS: dict[str, tuple[str, ...]] = {
    "Pod": ("spec",),
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "ReplicationController": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
    "PodTemplate": ("template", "spec"),
}

_CONTAINER_LISTS = (
    ("containers", "container"),
    ("initContainers", "initContainer"),
    ("ephemeralContainers", "ephemeralContainer"),
)


@dataclass(frozen=True, slots=True)
class ImageSite:
    """One image occurrence: where it is written and what it says."""

    field: str  # "spec.template.spec.containers[0].image"
    container: str | None  # container name, or the volume name for an image volume
    image: str  # as written
    kind: str  # container | initContainer | ephemeralContainer | imageVolume


@dataclass(frozen=True, slots=True)
class PullSecretRef:
    """A name in ``imagePullSecrets`` and where it is written (empty names are kept, then skipped)."""

    name: str
    field: str


@dataclass(frozen=True, slots=True)
class PodTemplate:
    """The pull-relevant part of one Pod or pod template."""

    object: ObjectRef
    spec_path: str
    is_pod: bool
    images: tuple[ImageSite, ...]
    pull_secrets: tuple[PullSecretRef, ...]
    service_account: str
    service_account_field: str
    node_selector: Mapping[str, str] = field(default_factory=dict)
    affinity: Mapping[str, Any] = field(default_factory=dict)
    tolerations: tuple[Mapping[str, Any], ...] = ()
    pod_labels: Mapping[str, str] = field(default_factory=dict)
    findings: tuple[Finding, ...] = ()


def object_ref(obj: Mapping[str, Any], default_namespace: str | None, source: str) -> ObjectRef:
    """The identity of a manifest, tolerant enough to name even a broken object in a message."""
    meta = obj.get("metadata")
    meta = meta if isinstance(meta, Mapping) else {}
    name = meta.get("name") if isinstance(meta.get("name"), str) else None
    if not name:
        gen = meta.get("generateName")
        name = f"{gen}<generated>" if isinstance(gen, str) and gen else "<unnamed>"
    ns = meta.get("namespace") if isinstance(meta.get("namespace"), str) else None
    return ObjectRef(
        api_version=str(obj.get("apiVersion", "")),
        kind=str(obj.get("kind", "")),
        namespace=ns or default_namespace,
        name=name,
        source=source,
    )


def spec_path_for(obj: Mapping[str, Any]) -> tuple[str, ...] | None:
    """Where the PodSpec lives in ``obj``, or None when it is not a workload."""
    kind = obj.get("kind")
    if isinstance(kind, str) and kind in SPEC_PATHS:
        return SPEC_PATHS[kind]
    spec = obj.get("spec")
    template = spec.get("template") if isinstance(spec, Mapping) else None
    pod_spec = template.get("spec") if isinstance(template, Mapping) else None
    if isinstance(pod_spec, Mapping) and isinstance(pod_spec.get("containers"), list):
        return ("spec", "template", "spec")
    return None


def _walk(obj: Mapping[str, Any], path: Sequence[str]) -> tuple[Any, str]:
    node: Any = obj
    done: list[str] = []
    for part in path:
        done.append(part)
        if not isinstance(node, Mapping):
            raise InputError(f"{'.'.join(done[:-1])} must be an object", ".".join(done[:-1]))
        node = node.get(part)
        if node is None:
            raise InputError(f"{'.'.join(done)} is missing", ".".join(done))
    if not isinstance(node, Mapping):
        raise InputError(f"{'.'.join(path)} must be an object", ".".join(path))
    return node, ".".join(path)


def _str_map(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InputError(f"{where} must be an object of strings", where)
    out: dict[str, str] = {}
    for k, v in value.items():
        if not isinstance(v, str):
            raise InputError(f'{where}["{k}"] must be a string', f'{where}["{k}"]')
        out[str(k)] = v
    return out


def _list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InputError(f"{where} must be a list", where)
    return value


def _images(spec: Mapping[str, Any], base: str, is_pod: bool) -> tuple[list[ImageSite], list[Finding]]:
    sites: list[ImageSite] = []
    findings: list[Finding] = []
    for key, kind in _CONTAINER_LISTS:
        for i, c in enumerate(_list(spec.get(key), f"{base}.{key}")):
            where = f"{base}.{key}[{i}]"
            if not isinstance(c, Mapping):
                raise InputError(f"{where} must be an object", where)
            name = c.get("name") if isinstance(c.get("name"), str) else None
            image = c.get("image")
            if image is None or image == "":
                # The API allows an empty image only in templates (defaulted later); a Pod needs one.
                findings.append(
                    Finding(
                        "image-missing",
                        f"{where}.image",
                        f"container {name or i} has no image"
                        + ("; the API server requires one on a Pod" if is_pod else "; nothing can be pulled"),
                        "error",
                    )
                )
                continue
            if not isinstance(image, str):
                raise InputError(f"{where}.image must be a string", f"{where}.image")
            sites.append(ImageSite(f"{where}.image", name, image, kind))
    for i, vol in enumerate(_list(spec.get("volumes"), f"{base}.volumes")):
        where = f"{base}.volumes[{i}]"
        if not isinstance(vol, Mapping):
            raise InputError(f"{where} must be an object", where)
        src = vol.get("image")
        if src is None:
            continue
        if not isinstance(src, Mapping):
            raise InputError(f"{where}.image must be an object", f"{where}.image")
        ref = src.get("reference")
        if ref is not None and not isinstance(ref, str):
            raise InputError(f"{where}.image.reference must be a string", f"{where}.image.reference")
        name = vol.get("name") if isinstance(vol.get("name"), str) else None
        if not isinstance(ref, str) or not ref:
            findings.append(
                Finding(
                    "image-missing",
                    f"{where}.image.reference",
                    f"image volume {name or i} has no reference",
                    "error",
                )
            )
            continue
        sites.append(ImageSite(f"{where}.image.reference", name, ref, "imageVolume"))
    return sites, findings


def extract(obj: Mapping[str, Any], default_namespace: str | None, source: str = "") -> PodTemplate | None:
    """The pod template of ``obj`` or None when ``obj`` is not a workload.

    Raises ``InputError`` with the field path when the object is malformed where it matters.
    """
    path = spec_path_for(obj)
    if path is None:
        return None
    _check_metadata(obj)
    ref = object_ref(obj, default_namespace, source)
    spec, base = _walk(obj, path)
    is_pod = ref.kind == "Pod"
    images, findings = _images(spec, base, is_pod)

    secrets: list[PullSecretRef] = []
    for i, item in enumerate(_list(spec.get("imagePullSecrets"), f"{base}.imagePullSecrets")):
        where = f"{base}.imagePullSecrets[{i}]"
        if not isinstance(item, Mapping):
            raise InputError(f"{where} must be an object with a name", where)
        name = item.get("name", "")
        if not isinstance(name, str):
            raise InputError(f"{where}.name must be a string", f"{where}.name")
        secrets.append(PullSecretRef(name, where))

    sa_field = f"{base}.serviceAccountName"
    sa = spec.get("serviceAccountName")
    if not sa:
        # The deprecated alias is still honoured by the API server when the new field is empty.
        sa = spec.get("serviceAccount")
        if sa:
            sa_field = f"{base}.serviceAccount"
    if sa is not None and not isinstance(sa, str):
        raise InputError(f"{sa_field} must be a string", sa_field)

    template_meta: Any = obj.get("metadata") if is_pod else _template_metadata(obj, path)
    meta_field = "metadata" if is_pod else ".".join((*path[:-1], "metadata"))
    if template_meta is not None and not isinstance(template_meta, Mapping):
        raise InputError(f"{meta_field} must be an object", meta_field)
    labels = _str_map(template_meta.get("labels") if template_meta else None, f"{meta_field}.labels")

    affinity = spec.get("affinity") or {}
    if not isinstance(affinity, Mapping):
        raise InputError(f"{base}.affinity must be an object", f"{base}.affinity")
    _check_node_affinity(affinity, f"{base}.affinity")
    tolerations = _list(spec.get("tolerations"), f"{base}.tolerations")
    for i, tol in enumerate(tolerations):
        where = f"{base}.tolerations[{i}]"
        if not isinstance(tol, Mapping):
            raise InputError(f"{where} must be an object", where)
        _check_strings(tol, ("key", "operator", "value", "effect"), where)

    return PodTemplate(
        object=ref,
        spec_path=base,
        is_pod=is_pod,
        images=tuple(images),
        pull_secrets=tuple(secrets),
        service_account=sa or "default",
        service_account_field=sa_field,
        node_selector=_str_map(spec.get("nodeSelector"), f"{base}.nodeSelector"),
        affinity=affinity,
        tolerations=tuple(tolerations),
        pod_labels=labels,
        findings=tuple(findings),
    )


def _template_metadata(obj: Mapping[str, Any], spec_path: tuple[str, ...]) -> Any:
    node: Any = obj
    for part in spec_path[:-1]:
        node = node.get(part) if isinstance(node, Mapping) else None
    return node.get("metadata") if isinstance(node, Mapping) else None


def _check_metadata(obj: Mapping[str, Any]) -> None:
    """``metadata`` and the names in it have the types the API server requires."""
    meta = obj.get("metadata")
    if meta is None:
        return
    if not isinstance(meta, Mapping):
        raise InputError("metadata must be an object", "metadata")
    _check_strings(meta, ("name", "generateName", "namespace"), "metadata")


def _check_strings(obj: Mapping[str, Any], keys: Sequence[str], where: str) -> None:
    for key in keys:
        value = obj.get(key)
        if value is not None and not isinstance(value, str):
            raise InputError(f"{where}.{key} must be a string", f"{where}.{key}")


def _check_node_affinity(affinity: Mapping[str, Any], where: str) -> None:
    """The parts of node affinity that decide placement (core/nodes.py reads them) are well typed.

    A malformed ``nodeSelectorTerms`` would otherwise be read as "no constraint" and place the pod
    on every node group; the API server rejects such a pod, so pullguard names the field instead.
    """
    node = affinity.get("nodeAffinity")
    if node is None:
        return
    if not isinstance(node, Mapping):
        raise InputError(f"{where}.nodeAffinity must be an object", f"{where}.nodeAffinity")
    required = node.get("requiredDuringSchedulingIgnoredDuringExecution")
    here = f"{where}.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"
    if required is None:
        return
    if not isinstance(required, Mapping):
        raise InputError(f"{here} must be an object", here)
    for i, term in enumerate(_list(required.get("nodeSelectorTerms"), f"{here}.nodeSelectorTerms")):
        term_at = f"{here}.nodeSelectorTerms[{i}]"
        if not isinstance(term, Mapping):
            raise InputError(f"{term_at} must be an object", term_at)
        for part in ("matchExpressions", "matchFields"):
            for j, expr in enumerate(_list(term.get(part), f"{term_at}.{part}")):
                expr_at = f"{term_at}.{part}[{j}]"
                if not isinstance(expr, Mapping):
                    raise InputError(f"{expr_at} must be an object", expr_at)
                _check_strings(expr, ("key", "operator"), expr_at)
                for k, value in enumerate(_list(expr.get("values"), f"{expr_at}.values")):
                    if not isinstance(value, str):
                        raise InputError(f"{expr_at}.values[{k}] must be a string", f"{expr_at}.values[{k}]")
