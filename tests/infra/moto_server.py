"""moto in server mode: the AWS control plane (ECR, IAM, EC2, STS, EKS) for the AWS tests.

Notes this builds on (research/test-infrastructure.md §4, moto 5.2.5):

* ``ThreadedMotoServer(ip_address="127.0.0.1", port=0)`` starts in-process in milliseconds; one per
  session. ``POST /moto-api/reset`` wipes it, but with managed policies loaded a reset plus the
  first IAM call after it cost 1.5–3 s (measured here), so tests do not reset per test: each
  names its roles, policies, repositories and clusters uniquely (``aws_names``) and never lists
  what it did not create;
* ``MOTO_IAM_LOAD_MANAGED_POLICIES=true`` makes AWS managed policies such as
  ``AmazonEC2ContainerRegistryReadOnly`` / ``…PullOnly`` exist (moto reads it when a backend is
  created, so it is set before start and stays set for the session);
* moto has no registry data plane: the real ``docker-registry`` with an htpasswd user ``AWS``
  whose password is ``<account>-auth-token`` (what moto's GetAuthorizationToken decodes to) plays
  ECR's registry, reached through ``aws.registryEndpoints``;
* moto implements neither ``iam:SimulatePrincipalPolicy`` nor ``ecr:DescribePullThroughCacheRules``
  (HTTP 500) — see ``iam_simulator.py`` for the former;
* the seeding clients here never retry (``max_attempts: 1``), so a moto 500 fails a test at once;
* ``enforcing_auth()`` switches moto's request authentication on (``POST /moto-api/reset-auth``
  with ``0``): every request is then checked against IAM, and access keys IAM does not know get a
  real ``InvalidClientTokenId`` — how "pullguard's own AWS credentials are refused" is produced.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
import httpx
from botocore.config import Config
from moto.server import ThreadedMotoServer

ACCOUNT = "123456789012"
OTHER_ACCOUNT = "210987654321"
REGION = "us-east-1"
#: What moto's GetAuthorizationToken decodes to for the default account: ``AWS:<this>``.
ECR_PASSWORD = f"{ACCOUNT}-auth-token"
#: Any key works against the non-enforcing server; these are what pullguard finds in its environment.
ACCESS_KEY = "AKIAPULLGUARDTESTKEY"
SECRET_KEY = "pullguard-test-secret-key"


def _client(url: str, service: str, region: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=url,
        region_name=region,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        config=Config(retries={"max_attempts": 1}),
    )


class MotoServer:
    """The session's in-process moto server."""

    def __init__(self) -> None:
        self._server: ThreadedMotoServer | None = None
        self._port = 0
        self._saved: str | None = None

    def start(self) -> MotoServer:
        self._saved = os.environ.get("MOTO_IAM_LOAD_MANAGED_POLICIES")
        os.environ["MOTO_IAM_LOAD_MANAGED_POLICIES"] = "true"
        # moto logs every request and a traceback per unimplemented action: keep test output readable.
        logging.getLogger("werkzeug").setLevel(logging.CRITICAL)
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        _, self._port = self._server.get_host_and_port()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
        if self._saved is None:
            os.environ.pop("MOTO_IAM_LOAD_MANAGED_POLICIES", None)
        else:
            os.environ["MOTO_IAM_LOAD_MANAGED_POLICIES"] = self._saved

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    def reset(self) -> None:
        httpx.post(f"{self.url}/moto-api/reset", timeout=5.0, trust_env=False).raise_for_status()

    def client(self, service: str, region: str = REGION) -> Any:
        """A boto3 client for seeding (retries off)."""
        return _client(self.url, service, region)

    @contextmanager
    def enforcing_auth(self) -> Iterator[None]:
        """Authenticate every request while inside (unknown access keys are refused)."""
        switch = f"{self.url}/moto-api/reset-auth"
        httpx.post(switch, content=b"0", timeout=5.0, trust_env=False).raise_for_status()
        try:
            yield
        finally:
            httpx.post(switch, content=b"inf", timeout=5.0, trust_env=False)

    def endpoints(self, *services: str) -> dict[str, str]:
        """``aws.endpoints`` sending these services (default: all five) here."""
        return {s: self.url for s in services or ("ecr", "iam", "ec2", "sts", "eks")}
