"""``pullguard`` (also ``kubectl-pullguard``): check manifests in CI, explain one image, serve.

A composition root: reads the configuration, builds adapters, hands them to the engine, renders
the report and maps it to the exit codes of DESIGN 1.1 — 0 every image will pull, 1 at least one
will not, 2 bad usage or bad input (the message names file, document and field), 3 nothing failed
but something could not be determined (``--allow-unknown`` maps 3 to 0).

``serve`` composes the webhook (DESIGN 1.2): configuration, certificates (a development one
under ``.pullguard/`` when none is given), the Kubernetes adapter (in-cluster when running in a
pod, a kubeconfig when asked, otherwise none — and then an unreadable pull secret is a finding),
the engine, the app and the TLS server. ``certs`` writes a CA and serving certificate and prints
the caBundle. ``check --kubeconfig/--context`` reads Secrets, ServiceAccounts and Nodes through
the same Kubernetes adapter as the webhook.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from webhook.adapters.kube import KubeCluster, NoCluster
from webhook.adapters.manifests import Document, read_inputs
from webhook.adapters.stream_objects import StreamObjects
from webhook.assembly import build, connect_cluster, engine_options
from webhook.core.ci_formats import Locator, render_ci
from webhook.core.errors import ClusterReadError, InputError, PullguardError
from webhook.core.objects import secret_from_dict, service_account_from_dict
from webhook.core.render import image_lines, render_text
from webhook.core.verdict import ObjectVerdict, Report
from webhook.core.workloads import extract
from webhook.engine import Engine
from webhook.nodeview import ClusterViews
from webhook.settings import Config, load_config

if TYPE_CHECKING:
    from webhook.metrics import Metrics
    from webhook.server import CertificateSource

EXIT_BAD_INPUT = 2


def _color() -> bool:
    """Colour only on a terminal, and never when ``NO_COLOR`` is set (no-color.org)."""
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def _fail(message: str) -> NoReturn:
    click.echo(f"pullguard: {message}", err=True)
    sys.exit(EXIT_BAD_INPUT)


async def _check(
    config: Config,
    objects: Sequence[tuple[Mapping[str, Any], str]],
    store: StreamObjects,
    namespace: str,
    *,
    offline: bool,
    cluster: KubeCluster | None = None,
) -> list[ObjectVerdict]:
    """Run the engine once: offline without any registry client, online with the full assembly.

    With a cluster, Nodes give the node groups (unless the configuration names them).
    """
    if offline:
        # Offline contacts no registry and no cloud API (an engine without a registry plans
        # only); Nodes give platforms only.
        view = await ClusterViews(config, cluster).view(pods_admitted=False)
        return await Engine(engine_options(config)).check_many(
            objects, view, store, default_namespace=namespace
        )
    # The cluster's Nodes, resolved by the cloud integrations (EKS roles, GKE node SAs), give the
    # node groups, exactly as the webhook sees them. The caller closes the cluster adapter.
    assembly = build(config, cluster=cluster)
    try:
        view = await assembly.views.view(pods_admitted=False)
        return await assembly.engine.check_many(objects, view, store, default_namespace=namespace)
    finally:
        await assembly.close_clients()


def _refuse_malformed(docs: Sequence[Document], namespace: str) -> None:
    """A workload that is not a valid object is bad input (exit 2), named by file, document, field.

    Every malformed document is listed, not only the first, so one CI run shows them all.
    """
    problems: list[str] = []
    for doc in docs:
        try:
            extract(doc.obj, namespace, doc.source)
        except InputError as exc:
            problems.append(f"{doc.source}: {exc.message}")
    if problems:
        for line in problems[:-1]:
            click.echo(f"pullguard: {line}", err=True)
        _fail(problems[-1])


def _collect_objects(
    docs: Sequence[Document], namespace: str, store: StreamObjects, *, secret_files: bool = False
) -> list[str]:
    """Feed Secrets and ServiceAccounts of the input to the in-memory source (as the cluster would).

    Returns the Secrets' names in input order. ``secret_files`` (explain's ``--secret-file``): the
    Secrets are used as if they were in ``namespace`` — only the reviewed namespace's secrets are
    ever used (DESIGN 5) — and other kinds are skipped with a note.
    """
    names: list[str] = []
    for doc in docs:
        kind = doc.obj.get("kind")
        try:
            if kind == "Secret":
                secret = secret_from_dict(doc.obj, namespace, doc.source)
                if secret_files and secret.namespace != namespace:
                    secret = replace(secret, namespace=namespace)
                store.add_secret(secret)
                names.append(secret.name)
            elif kind == "ServiceAccount":
                store.add_service_account(service_account_from_dict(doc.obj, namespace, doc.source))
            elif secret_files:
                # "every Secret of those files": a manifest that also holds workloads is fine.
                click.echo(f"pullguard: {doc.source}: ignoring {kind or 'a document without kind'}", err=True)
        except InputError as exc:
            _fail(exc.message)  # it names the document: "Secret rendered.yaml#1 regcred: data[...]"
    return names


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="pullguard")
def cli() -> None:
    """Will the node be able to pull every image, with the identity it will actually use?"""


@cli.command()
@click.argument("paths", nargs=-1)
@click.option(
    "--config", "config_path", type=click.Path(dir_okay=False), help="configuration file (DESIGN 1.3)"
)
@click.option(
    "--namespace", default="default", show_default=True, help="namespace for objects that name none"
)
@click.option(
    "--output",
    type=click.Choice(["text", "json", "sarif", "github", "junit"]),
    default="text",
    show_default=True,
)
@click.option(
    "--kubeconfig",
    type=click.Path(dir_okay=False),
    help="read Secrets, ServiceAccounts, Nodes from a cluster",
)
@click.option("--context", help="kubeconfig context")
@click.option(
    "--offline", is_flag=True, help="contact no registry: parse, resolve identities, report the plan"
)
@click.option(
    "--allow-unknown", is_flag=True, help="exit 0 instead of 3 when something could not be determined"
)
def check(
    paths: tuple[str, ...],
    config_path: str | None,
    namespace: str,
    output: str,
    kubeconfig: str | None,
    context: str | None,
    offline: bool,
    allow_unknown: bool,
) -> None:
    """Check Pods and workloads in PATHS (files, directories, or '-' for stdin)."""
    try:
        config = load_config(config_path)
        docs = read_inputs(list(paths) or ["-"])
    except PullguardError as exc:
        _fail(str(exc))
    cluster: KubeCluster | None = None
    if kubeconfig or context:
        try:
            cluster = connect_cluster(config, kubeconfig=kubeconfig, context=context)
        except ClusterReadError as exc:
            _fail(str(exc))
    _refuse_malformed(docs, namespace)
    store = StreamObjects(fallback=cluster)
    _collect_objects(docs, namespace, store)
    try:
        results = asyncio.run(
            _check(
                config, [(d.obj, d.source) for d in docs], store, namespace, offline=offline, cluster=cluster
            )
        )
    finally:
        if cluster is not None:
            cluster.close()
    report = Report(tuple(results), offline=offline)
    _emit(report, output, docs)
    sys.exit(report.exit_code(allow_unknown or offline))


def _emit(report: Report, output: str, docs: Sequence[Document]) -> None:
    if output == "json":
        click.echo(json.dumps(report.to_json(), indent=2, ensure_ascii=False))
    elif output == "text":
        click.echo(render_text(report, color=_color()), nl=False)
    else:
        click.echo(render_ci(report, output, _locator(docs)), nl=False)


def _locator(docs: Sequence[Document]) -> Locator:
    """``(source, field) -> (file, line)`` from the YAML nodes of the input documents."""
    by_source = {d.source: d for d in docs}

    def locate(source: str, field: str | None) -> tuple[str, int | None]:
        doc = by_source.get(source)
        if doc is None:
            return source.split("#", 1)[0] or "-", None
        return doc.path, doc.line_of(field)

    return locate


@cli.command()
@click.argument("image")
@click.option("--namespace", default="default", show_default=True)
@click.option("--service-account", default="default", show_default=True)
@click.option("--pull-secret", "pull_secrets", multiple=True, help="pull secret name (repeatable, in order)")
@click.option(
    "--secret-file", "secret_files", multiple=True, type=click.Path(dir_okay=False), help="Secret manifests"
)
@click.option("--config", "config_path", type=click.Path(dir_okay=False))
@click.option("--offline", is_flag=True, help="contact no registry: report the plan")
@click.option("--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--allow-unknown", is_flag=True, help="exit 0 instead of 3 when the answer is unknown")
def explain(
    image: str,
    namespace: str,
    service_account: str,
    pull_secrets: tuple[str, ...],
    secret_files: tuple[str, ...],
    config_path: str | None,
    offline: bool,
    output: str,
    allow_unknown: bool,
) -> None:
    """The four answers for one IMAGE: exists? public? which identity? permitted? — and the fix."""
    try:
        config = load_config(config_path)
    except PullguardError as exc:
        _fail(str(exc))
    store = StreamObjects()
    try:
        secret_docs = read_inputs(list(secret_files))
    except PullguardError as exc:
        _fail(str(exc))
    file_secrets = _collect_objects(secret_docs, namespace, store, secret_files=True)
    names = list(pull_secrets) or file_secrets
    pod: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "explain", "namespace": namespace},
        "spec": {
            "serviceAccountName": service_account,
            "containers": [{"name": "explain", "image": image}],
            "imagePullSecrets": [{"name": n} for n in names],
        },
    }
    # explain answers for the image itself: namespace exemptions do not hide it.
    unexempt = config.model_copy(update={"exempt_namespaces": ()})
    results = asyncio.run(_check(unexempt, [(pod, "explain")], store, namespace, offline=offline))
    result = results[0] if results else None
    if result is None or not result.images:
        findings = "; ".join(f.message for f in (result.findings if result else ()))
        _fail(f"cannot explain {image!r}: {findings or 'no image'}")
    verdict = result.images[0]
    report = Report((result,), offline=offline)
    if output == "json":
        click.echo(json.dumps(verdict.to_json(), indent=2, ensure_ascii=False))
    else:
        for f in result.findings:
            click.echo(f"! {f.field + ': ' if f.field else ''}{f.message}")
        click.echo("\n".join(image_lines(verdict, color=_color())))
    sys.exit(report.exit_code(allow_unknown=allow_unknown or offline))


_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
SERVICE_ACCOUNT_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"  # noqa: S105 (a path)


@cli.command()
@click.option(
    "--config", "config_path", type=click.Path(dir_okay=False), help="configuration file (DESIGN 1.3)"
)
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="address to listen on (0.0.0.0 in a pod)"
)
@click.option("--port", default=8443, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--tls-cert", type=click.Path(dir_okay=False), help="serving certificate (PEM), reloaded on change"
)
@click.option("--tls-key", type=click.Path(dir_okay=False), help="its private key (PEM)")
@click.option(
    "--kubeconfig",
    type=click.Path(dir_okay=False),
    help="outside a cluster: read Secrets, ServiceAccounts, Namespaces, Nodes with this kubeconfig",
)
@click.option("--context", help="kubeconfig context")
@click.option(
    "--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="info", show_default=True
)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="worker processes on the one listening socket; recommended: one per CPU of the pod's limit",
)
def serve(
    config_path: str | None,
    host: str,
    port: int,
    tls_cert: str | None,
    tls_key: str | None,
    kubeconfig: str | None,
    context: str | None,
    log_level: str,
    workers: int,
) -> None:
    """The admission webhook over HTTPS: POST /validate, /healthz, /readyz, /metrics."""
    from webhook import logs
    from webhook.certs import DEV_DIR, ensure_dev_certificate
    from webhook.metrics import Metrics
    from webhook.server import CertificateError, CertificateSource, bind

    logs.configure(log_level)
    log = logging.getLogger("pullguard.serve")
    try:
        config = load_config(config_path)
    except PullguardError as exc:
        _fail(str(exc))
    if bool(tls_cert) != bool(tls_key):
        _fail("--tls-cert and --tls-key go together")
    if not tls_cert or not tls_key:
        issued, made = ensure_dev_certificate(Path(DEV_DIR))
        tls_cert, tls_key = str(issued.cert), str(issued.key)
        log.warning(
            "DEVELOPMENT ONLY: serving a self-signed certificate; use --tls-cert/--tls-key in a cluster",
            extra={"fields": {"cert": tls_cert, "ca": str(issued.ca_cert), "created": made}},
        )
    in_cluster = bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and os.path.isfile(SERVICE_ACCOUNT_TOKEN)
    access = _ClusterAccess(kubeconfig, context, in_cluster)
    metrics = Metrics()
    try:
        cluster = access.connect(config, metrics)  # here, so a bad kubeconfig exits 2 before any worker
    except ClusterReadError as exc:
        _fail(str(exc))
    log.info("cluster access", extra={"fields": {"apiServer": cluster.where, "inCluster": in_cluster}})
    certs = CertificateSource(tls_cert, tls_key, on_reload=metrics.certificate_reload)
    try:
        certs.load()
        sock = bind(host, port)
    except CertificateError as exc:
        _fail(f"cannot serve: {exc}")
    except OSError as exc:
        _fail(f"cannot listen on {host}:{port}: {exc.strerror}")
    if workers == 1:
        _serve_worker(config, metrics, cluster, certs, sock)
        return
    from webhook.prefork import Supervisor

    cluster.close()  # each worker opens its own: connection pools must not cross a fork
    key_file = tls_key

    def work(slot: int) -> None:
        logs.tag_process(worker=slot)
        own = Metrics()
        own_certs = CertificateSource(certs.cert_file, key_file, on_reload=own.certificate_reload)
        own_certs.load()
        _serve_worker(config, own, access.connect(config, own), own_certs, sock)

    sys.exit(Supervisor(workers, work).run())


class _ClusterAccess:
    """How ``serve`` reaches the API server: a kubeconfig, the pod's ServiceAccount, or not at all."""

    def __init__(self, kubeconfig: str | None, context: str | None, in_cluster: bool) -> None:
        self.kubeconfig = kubeconfig
        self.context = context
        self.in_cluster = in_cluster

    def connect(self, config: Config, metrics: Metrics | None) -> KubeCluster | NoCluster:
        if self.kubeconfig or self.context:
            return connect_cluster(config, kubeconfig=self.kubeconfig, context=self.context, metrics=metrics)
        if self.in_cluster:
            return connect_cluster(config, in_cluster=True, metrics=metrics)
        return NoCluster()


def _serve_worker(
    config: Config, metrics: Metrics, cluster: KubeCluster | NoCluster, certs: CertificateSource, sock: Any
) -> None:
    """One serving process: the engine over ``cluster``, the app, the TLS server, until stopped."""
    from webhook.app import create_app, reviewer_for
    from webhook.server import Server
    from webhook.server import run as run_server

    log = logging.getLogger("pullguard.serve")
    assembly = build(config, cluster=cluster, metrics=metrics)
    app = create_app(reviewer_for(config, assembly, metrics), metrics, certs.problem)
    server = Server(app, certs, sock)

    async def run() -> None:
        try:
            await server.serve()
        finally:
            await assembly.aclose()
            log.info("stopped")

    run_server(run())


@cli.command()
@click.option("--service", required=True, help="the webhook's Service name")
@click.option("--namespace", required=True, help="the Service's namespace")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="directory to write")
@click.option(
    "--days", default=365, show_default=True, type=click.IntRange(1, 3650), help="serving cert validity"
)
@click.option(
    "--new-ca", is_flag=True, help="make a new CA even if DIR has a usable one (changes the caBundle)"
)
def certs(service: str, namespace: str, out_dir: str, days: int, new_ca: bool) -> None:
    """A CA and a serving certificate for SERVICE.NAMESPACE.svc; prints the caBundle.

    Run it again with the same --out to rotate the serving certificate: the CA is kept, so the
    caBundle stays the same.
    """
    from webhook.certs import service_names, write_certificates

    for option, value in (("--service", service), ("--namespace", namespace)):
        if not _DNS_LABEL.match(value):
            _fail(f"{option} {value!r} is not a DNS label (lowercase letters, digits and '-', at most 63)")
    try:
        issued = write_certificates(
            Path(out_dir), service_names(service, namespace), new_ca=new_ca, days=days
        )
    except (OSError, ValueError) as exc:
        _fail(f"cannot write certificates to {out_dir}: {exc}")
    click.echo(
        f"pullguard: wrote {issued.cert} and {issued.key} for {', '.join(issued.names)}, signed by "
        f"{'a new' if issued.new_ca else 'the existing'} CA {issued.ca_cert}; the caBundle follows",
        err=True,
    )
    click.echo(issued.ca_bundle)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``pullguard`` and ``kubectl-pullguard`` commands."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="pullguard")


if __name__ == "__main__":  # pragma: no cover
    main()
