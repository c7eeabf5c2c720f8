"""A small TTL cache with single-flight loading, for AWS answers that many checks share.

A role's policies, a repository policy, an authorization token or an instance's profile is read
once per TTL however many images or admissions need it at the same moment (the first caller
loads, the others await the same task). Failures are not cached unless the loader says so (its
``ttl_of`` returns a positive time for them), so a transient AWS error is retried next time.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class Memo(Generic[V]):
    def __init__(
        self, ttl: float, *, clock: Callable[[], float] = time.monotonic, max_entries: int = 4096
    ) -> None:
        self.ttl = ttl
        self._clock = clock
        self._max = max_entries
        self._values: OrderedDict[Hashable, tuple[float, V]] = OrderedDict()
        self._inflight: dict[Hashable, asyncio.Task[V]] = {}
        self.loads = 0

    async def get(
        self, key: Hashable, load: Callable[[], Awaitable[V]], ttl_of: Callable[[V], float] | None = None
    ) -> V:
        now = self._clock()
        hit = self._values.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        task = self._inflight.get(key)
        if task is None:
            self.loads += 1
            task = asyncio.ensure_future(load())
            self._inflight[key] = task
            task.add_done_callback(lambda _t: self._inflight.pop(key, None))
        value = await asyncio.shield(task)
        ttl = self.ttl if ttl_of is None else ttl_of(value)
        if ttl > 0:
            self._values[key] = (self._clock() + ttl, value)
            self._values.move_to_end(key)
            while len(self._values) > self._max:
                self._values.popitem(last=False)
        return value
