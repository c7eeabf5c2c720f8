"""Strict JSON Schemas for the custom resources the chart can render (cert-manager, prometheus-operator).

kubernetes-validate ships the schemas of Kubernetes' built-in kinds only, so a Certificate, Issuer
or ServiceMonitor would otherwise go unchecked. These are written here, reduced to what a chart
may set, from the CRDs' ``openAPIV3Schema``:

* cert-manager ``deploy/crds/cert-manager.io_certificates.yaml`` and ``..._issuers.yaml`` (v1):
  Certificate ``spec`` requires ``issuerRef`` (with ``name``) and ``secretName``;
  ``privateKey.algorithm`` is RSA | ECDSA | Ed25519, ``rotationPolicy`` Never | Always;
  Issuer ``spec.ca`` requires ``secretName``; ``spec.selfSigned`` is an object.
* prometheus-operator ``monitoring.coreos.com_servicemonitors.yaml`` (v1): ``spec.selector`` is a
  LabelSelector, ``endpoints[].scheme`` is http | https, ``tlsConfig.ca`` is a ``secret`` or
  ``configMap`` key reference.

Every object lists its upstream properties by name with ``additionalProperties: false``, so a
misspelled field fails as it would in the API server's structural-schema pruning (which would
silently drop it). Fields the chart never sets are typed loosely (``{}``) but still named.
"""

from __future__ import annotations

from typing import Any

_ANY: dict[str, Any] = {}
_STR: dict[str, Any] = {"type": "string"}
_STRS: dict[str, Any] = {"type": "array", "items": _STR}
_STRMAP: dict[str, Any] = {"type": "object", "additionalProperties": _STR}


def _obj(props: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "object", "additionalProperties": False, "properties": props}
    if required:
        out["required"] = list(required)
    return out


_METADATA = _obj(
    {"name": _STR, "namespace": _STR, "labels": _STRMAP, "annotations": _STRMAP},
    required=("name", "namespace"),
)


def _resource(api_version: str, kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    return _obj(
        {
            "apiVersion": {"const": api_version},
            "kind": {"const": kind},
            "metadata": _METADATA,
            "spec": spec,
        },
        required=("apiVersion", "kind", "metadata", "spec"),
    )


_KEY_REF = _obj({"name": _STR, "key": _STR, "optional": {"type": "boolean"}}, required=("key",))
_USAGES = [
    "signing", "digital signature", "content commitment", "key encipherment", "key agreement",
    "data encipherment", "cert sign", "crl sign", "encipher only", "decipher only", "any",
    "server auth", "client auth", "code signing", "email protection", "s/mime", "ipsec end system",
    "ipsec tunnel", "ipsec user", "timestamping", "ocsp signing", "microsoft sgc", "netscape sgc",
]  # fmt: skip

CERTIFICATE = _resource(
    "cert-manager.io/v1",
    "Certificate",
    _obj(
        {
            "additionalOutputFormats": _ANY,
            "commonName": _STR,
            "dnsNames": _STRS,
            "duration": _STR,
            "emailAddresses": _STRS,
            "encodeUsagesInRequest": {"type": "boolean"},
            "ipAddresses": _STRS,
            "isCA": {"type": "boolean"},
            "issuerRef": _obj({"name": _STR, "kind": _STR, "group": _STR}, required=("name",)),
            "keystores": _ANY,
            "literalSubject": _STR,
            "nameConstraints": _ANY,
            "otherNames": _ANY,
            "privateKey": _obj(
                {
                    "algorithm": {"enum": ["RSA", "ECDSA", "Ed25519"]},
                    "encoding": {"enum": ["PKCS1", "PKCS8"]},
                    "rotationPolicy": {"enum": ["Never", "Always"]},
                    "size": {"type": "integer"},
                }
            ),
            "renewBefore": _STR,
            "renewBeforePercentage": {"type": "integer"},
            "revisionHistoryLimit": {"type": "integer"},
            "secretName": _STR,
            "secretTemplate": _obj({"annotations": _STRMAP, "labels": _STRMAP}),
            "signatureAlgorithm": _STR,
            "subject": _ANY,
            "uris": _STRS,
            "usages": {"type": "array", "items": {"enum": _USAGES}},
        },
        required=("issuerRef", "secretName"),
    ),
)

ISSUER = _resource(
    "cert-manager.io/v1",
    "Issuer",
    _obj(
        {
            "acme": _ANY,
            "ca": _obj(
                {
                    "secretName": _STR,
                    "crlDistributionPoints": _STRS,
                    "issuingCertificateURLs": _STRS,
                    "ocspServers": _STRS,
                },
                required=("secretName",),
            ),
            "selfSigned": _obj({"crlDistributionPoints": _STRS}),
            "vault": _ANY,
            "venafi": _ANY,
        }
    ),
)

_TLS_CONFIG = _obj(
    {
        "ca": _obj({"secret": _KEY_REF, "configMap": _KEY_REF}),
        "caFile": _STR,
        "cert": _obj({"secret": _KEY_REF, "configMap": _KEY_REF}),
        "certFile": _STR,
        "insecureSkipVerify": {"type": "boolean"},
        "keyFile": _STR,
        "keySecret": _KEY_REF,
        "maxVersion": {"enum": ["TLS10", "TLS11", "TLS12", "TLS13"]},
        "minVersion": {"enum": ["TLS10", "TLS11", "TLS12", "TLS13"]},
        "serverName": _STR,
    }
)
_DURATION = {
    "type": "string",
    "pattern": r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$",
}
_ENDPOINT = _obj(
    {
        "authorization": _ANY, "basicAuth": _ANY, "bearerTokenFile": _STR, "bearerTokenSecret": _ANY,
        "enableHttp2": {"type": "boolean"}, "filterRunning": {"type": "boolean"},
        "followRedirects": {"type": "boolean"}, "honorLabels": {"type": "boolean"},
        "honorTimestamps": {"type": "boolean"}, "interval": _DURATION, "metricRelabelings": _ANY,
        "oauth2": _ANY, "params": _ANY, "path": _STR, "port": _STR, "proxyConnectHeader": _ANY,
        "proxyFromEnvironment": {"type": "boolean"}, "proxyUrl": _STR, "relabelings": _ANY,
        "scheme": {"enum": ["http", "https"]}, "scrapeTimeout": _DURATION, "targetPort": _ANY,
        "tlsConfig": _TLS_CONFIG, "trackTimestampsStaleness": {"type": "boolean"},
    }
)  # fmt: skip
_LABEL_SELECTOR = _obj({"matchLabels": _STRMAP, "matchExpressions": {"type": "array"}})

SERVICE_MONITOR = _resource(
    "monitoring.coreos.com/v1",
    "ServiceMonitor",
    _obj(
        {
            "attachMetadata": _ANY, "bodySizeLimit": _STR, "endpoints": {"type": "array", "items": _ENDPOINT},
            "jobLabel": _STR, "keepDroppedTargets": {"type": "integer"}, "labelLimit": {"type": "integer"},
            "labelNameLengthLimit": {"type": "integer"}, "labelValueLengthLimit": {"type": "integer"},
            "namespaceSelector": _obj({"any": {"type": "boolean"}, "matchNames": _STRS}),
            "podTargetLabels": _STRS, "sampleLimit": {"type": "integer"}, "scrapeClass": _STR,
            "scrapeProtocols": _STRS, "selector": _LABEL_SELECTOR, "targetLabels": _STRS,
            "targetLimit": {"type": "integer"},
        },
        required=("selector",),
    ),
)  # fmt: skip

#: (apiVersion, kind) -> schema
CRD_SCHEMAS: dict[tuple[str, str], dict[str, Any]] = {
    ("cert-manager.io/v1", "Certificate"): CERTIFICATE,
    ("cert-manager.io/v1", "Issuer"): ISSUER,
    ("monitoring.coreos.com/v1", "ServiceMonitor"): SERVICE_MONITOR,
}
