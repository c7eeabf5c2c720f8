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
from http.server import BaseHTTPRequestHandler

import httpx

from tests.infra._http import LoopbackHTTP, QuietHandler

TARGET = "AmazonEC2ContainerRegistry_V20150921.DescribePullThroughCacheRules"
_HOP = frozenset({"host", "content-length", "connection", "transfer-encoding"})
_AMZ_JSON = "application/x-amz-json-1.1"


class CacheRulesFront(LoopbackHTTP):
    thread_name = "ecr-cache-rules"

    def __init__(self, moto_url: str) -> None:
        self.moto_url = moto_url
        self.rules: list[dict[str, str]] = []
        self.asked = 0

    def rule(self, prefix: str, upstream: str, registry_id: str) -> None:
        self.rules.append(
            {"ecrRepositoryPrefix": prefix, "upstreamRegistryUrl": upstream, "registryId": registry_id}
        )

    def handler(self) -> type[BaseHTTPRequestHandler]:
        front = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                body = self.read_body()
                if self.headers.get("X-Amz-Target") == TARGET:
                    front.asked += 1
                    wanted = json.loads(body or b"{}").get("registryId")
                    rules = [r for r in front.rules if wanted in (None, r["registryId"])]
                    self.reply(200, json.dumps({"pullThroughCacheRules": rules}).encode(), _AMZ_JSON)
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
                answer = httpx.post(
                    front.moto_url + self.path, content=body, headers=headers, trust_env=False
                )
                self.reply(
                    answer.status_code, answer.content, answer.headers.get("content-type") or _AMZ_JSON
                )

        return Handler
