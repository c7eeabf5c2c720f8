"""The AWS answers' cache: one load per key per TTL however many checks ask at once; failures not kept."""

from __future__ import annotations

import asyncio

import pytest

from webhook.memo import Memo


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_concurrent_askers_share_one_load() -> None:
    memo: Memo[str] = Memo(60.0, clock=Clock())
    calls = []

    async def load() -> str:
        calls.append(1)
        await asyncio.sleep(0.01)
        return "policies"

    async def burst() -> list[str]:
        return list(await asyncio.gather(*(memo.get("role", load) for _ in range(50))))

    assert asyncio.run(burst()) == ["policies"] * 50
    assert len(calls) == 1


def test_entries_expire_after_their_ttl_and_ttl_of_can_refuse_caching() -> None:
    clock = Clock()
    memo: Memo[int] = Memo(60.0, clock=clock)
    counter = iter(range(100))

    async def load() -> int:
        return next(counter)

    async def ask(key: str, ttl: float | None = None) -> int:
        return await memo.get(key, load, (lambda _v: ttl) if ttl is not None else None)

    assert asyncio.run(ask("a")) == 0
    clock.now = 59.0
    assert asyncio.run(ask("a")) == 0
    clock.now = 61.0
    assert asyncio.run(ask("a")) == 1
    assert [asyncio.run(ask("b", ttl=0.0)) for _ in range(2)] == [2, 3]


def test_a_failed_load_is_not_cached() -> None:
    memo: Memo[str] = Memo(60.0, clock=Clock())
    answers = iter([RuntimeError("throttled"), "ok"])

    async def load() -> str:
        item = next(answers)
        if isinstance(item, Exception):
            raise item
        return item

    with pytest.raises(RuntimeError):
        asyncio.run(memo.get("k", load))
    assert asyncio.run(memo.get("k", load)) == "ok"


def test_expired_entries_of_keys_never_asked_again_are_dropped() -> None:
    """Found by the soak (bench/soak.py): unique tags, each answered once, used to stay cached
    (expired) until max_entries pushed them out, so memory grew with the stream of new tags."""
    clock = Clock()
    memo: Memo[int] = Memo(10.0, clock=clock, max_entries=1000)
    for i in range(500):
        clock.now = float(i)
        memo.put(f"tag-{i}", i, 10.0)
    assert len(memo) <= 11  # only the last ten seconds' worth is still fresh
    assert memo.peek("tag-499") == 499
    assert memo.peek("tag-0") is None
