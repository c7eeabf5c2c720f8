"""Fixtures for the webhook tests: the real webhook over TLS, real registries, the fake API server."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack
from pathlib import Path
from typing import Any

import pytest
import trustme

from tests.infra.fake_apiserver import FakeApiServer
from tests.support.webhook import RunningWebhook, running_webhook

StartWebhook = Callable[..., RunningWebhook]
_names = itertools.count()


@pytest.fixture(scope="session")
def fake_api(test_ca: trustme.CA) -> Iterator[FakeApiServer]:
    """One fake API server per session; tests use their own namespaces, so fixtures never collide."""
    with FakeApiServer(test_ca) as server:
        yield server


@pytest.fixture(scope="session")
def kubeconfig(fake_api: FakeApiServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fake_api.write_kubeconfig(tmp_path_factory.mktemp("kube") / "config")


@pytest.fixture
def namespace(request: pytest.FixtureRequest) -> str:
    """A namespace no other test uses (the adapter caches objects for a few seconds)."""
    return f"ns{next(_names)}-{abs(hash(request.node.nodeid)) % 100000}"


@pytest.fixture
def start_webhook(test_ca: trustme.CA, tmp_path: Path) -> Iterator[StartWebhook]:
    """``start_webhook(config, kubeconfig=..., context=...)`` -> a running webhook, stopped after the test."""
    with ExitStack() as stack:

        def start(config: dict[str, Any], **kwargs: Any) -> RunningWebhook:
            cert_dir = kwargs.pop("cert_dir", None) or tmp_path / f"certs{next(_names)}"
            manager: AbstractContextManager[RunningWebhook] = running_webhook(
                config, test_ca, cert_dir, **kwargs
            )
            return stack.enter_context(manager)

        yield start


def loopback(*registries: Any, **extra: Any) -> dict[str, Any]:
    """A configuration that lets pullguard reach the tests' loopback registries (plain HTTP)."""
    config: dict[str, Any] = {"network": {"allowLoopback": True, "plainHttp": [r.host for r in registries]}}
    config.update(extra)
    return config
