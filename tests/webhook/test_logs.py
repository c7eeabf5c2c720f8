"""The webhook's logs never carry a URL's credentials, whatever ``--log-level`` says (DESIGN 5).

Registries redirect blob downloads to presigned storage URLs (ECR to S3, Artifact Registry to
GCS) whose query string is a credential; httpx logs every request URL at INFO, urllib3 and
botocore at DEBUG. This sends a real request through pullguard's guarded client with logging
configured the way ``pullguard serve`` configures it, and reads what reached stderr.
"""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from tests.support.scripted import Reply, ScriptedServer
from webhook import logs
from webhook.adapters.http import make_client
from webhook.core.destinations import DestinationPolicy

SECRET = "X-Amz-Security-Token=LEAKTOKEN777&X-Amz-Signature=LEAKSIG888"


@pytest.mark.parametrize("level", ["info", "debug"])
def test_request_urls_with_credentials_never_reach_the_log(
    level: str, capsys: pytest.CaptureFixture[str]
) -> None:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        logs.configure(level)
        with ScriptedServer() as server:
            server.route("GET", "/s3/blob", Reply(200, body=b"{}"))

            async def fetch() -> int:
                client = make_client(policy=DestinationPolicy(allow_loopback=True), timeout=2.0)
                try:
                    response = await client.get(f"http://{server.netloc}/s3/blob?{SECRET}")
                    return response.status_code
                finally:
                    await client.aclose()

            assert asyncio.run(fetch()) == 200
            logging.getLogger("pullguard.test").info("after the request")
        err = capsys.readouterr().err
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    lines = [json.loads(line) for line in err.splitlines() if line.strip()]
    assert any(line["msg"] == "after the request" for line in lines)  # logging works at this level
    assert "LEAK" not in err
