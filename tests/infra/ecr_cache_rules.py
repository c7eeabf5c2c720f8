"""A wire-level stand-in for ONE ECR action moto lacks: ``DescribePullThroughCacheRules``.

Why: moto (5.2.5) answers ``ecr:DescribePullThroughCacheRules`` with HTTP 500 ``NotImplementedError``
(research/test-infrastructure.md §4), so pull-through cache repositories cannot be exercised
against moto alone. This small HTTP server sits in front of moto as the ``ecr`` endpoint: a request
whose ``X-Amz-Target`` is ``AmazonEC2ContainerRegistry_V20150921.DescribePullThroughCacheRules`` is
answered from the rules the test declares (the AWS JSON 1.1 shape: ``pullThroughCacheRules[]`` with
``ecrRepositoryPrefix``, ``upstreamRegistryUrl``, ``registryId``); every other request is forwarded
byte for byte to moto and moto's answer returned. pullguard's real boto3 client and parsing run
unchanged. Only 127.0.0.1.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

TARGET = "AmazonEC2ContainerRegistry_V20150921.DescribePullThroughCacheRules"
_HOP = frozenset({"host", "content-length", "connection", "transfer-encoding"})


class CacheRulesFront:
    def __init__(self, moto_url: str) -> None:
        self.moto_url = moto_url
        self.rules: list[dict[str, str]] = []
        self.asked = 0
        self._server: ThreadingHTTPServer | None = None

    def rule(self, prefix: str, upstream: str, registry_id: str) -> None:
        self.rules.append(
            {"ecrRepositoryPrefix": prefix, "upstreamRegistryUrl": upstream, "registryId": registry_id}
        )

    def start(self) -> CacheRulesFront:
        front = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # stdlib signature
                return

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.headers.get("X-Amz-Target") == TARGET:
                    front.asked += 1
                    wanted = json.loads(body or b"{}").get("registryId")
                    rules = [r for r in front.rules if wanted in (None, r["registryId"])]
                    status, data, kind = 200, json.dumps({"pullThroughCacheRules": rules}).encode(), None
                else:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
                    answer = httpx.post(
                        front.moto_url + self.path, content=body, headers=headers, trust_env=False
                    )
                    status, data, kind = (
                        answer.status_code,
                        answer.content,
                        answer.headers.get("content-type"),
                    )
                self.send_response(status)
                self.send_header("Content-Type", kind or "application/x-amz-json-1.1")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"
