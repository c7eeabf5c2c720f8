"""One TTL cache with single-flight loading, for every answer many checks share.

Registry observations (the engine), Kubernetes reads (the kube adapter), the cluster's node view,
and the cloud integrations' IAM policies, tokens and instance profiles are each loaded once per
TTL however many images or admissions ask at the same moment: the first caller starts the load,
the others await the same task (``asyncio.shield``: a caller whose admission timed out does not
cancel the load the others wait for). The value is stored when the load finishes, in the task's
done-callback, so an answer that arrives after every waiter gave up still serves the next one.

``ttl_of(value)`` decides per value (0: do not keep it), so transient failures are retried next
time while definite answers are kept; entries beyond ``max_entries`` are dropped oldest first,
and expired ones at the oldest end are dropped whenever a value is stored.
``stats`` counts ``<prefix>hit``, ``<prefix>miss`` and ``single_flight`` for ``/metrics``.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")

__all__ = ["Memo"]


class Memo(Generic[V]):
    def __init__(
        self,
        ttl: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_entries: int = 4096,
        stats: Counter[str] | None = None,
        prefix: str = "cache_",
    ) -> None:
        self.ttl = ttl
        self._clock = clock
        self._max = max_entries
        self._values: OrderedDict[Hashable, tuple[float, V]] = OrderedDict()
        self._inflight: dict[Hashable, asyncio.Task[V]] = {}
        self.stats: Counter[str] = stats if stats is not None else Counter()
        self._prefix = prefix
        self.loads = 0

    def peek(self, key: Hashable) -> V | None:
        """The fresh value for ``key`` without loading (None when absent or expired)."""
        hit = self._values.get(key)
        return hit[1] if hit is not None and hit[0] > self._clock() else None

    async def get(
        self, key: Hashable, load: Callable[[], Awaitable[V]], ttl_of: Callable[[V], float] | None = None
    ) -> V:
        hit = self._values.get(key)
        if hit is not None and hit[0] > self._clock():
            self.stats[self._prefix + "hit"] += 1
            return hit[1]
        task = self._inflight.get(key)
        if task is None:
            self.loads += 1
            self.stats[self._prefix + "miss"] += 1
            task = asyncio.ensure_future(load())
            self._inflight[key] = task
            task.add_done_callback(lambda done: self._store(key, done, ttl_of))
        else:
            self.stats["single_flight"] += 1
        return await asyncio.shield(task)

    def put(self, key: Hashable, value: V, ttl: float) -> None:
        """Keep ``value`` for ``ttl`` seconds (nothing when ``ttl <= 0``)."""
        if ttl <= 0:
            return
        now = self._clock()
        self._values[key] = (now + ttl, value)
        self._values.move_to_end(key)
        while len(self._values) > self._max:
            self._values.popitem(last=False)
        # Expired entries at the old end go too: a stream of keys never asked again (unique tags,
        # each answered once) would otherwise stay in memory until max_entries pushes them out
        # (found by bench/soak.py: RSS grew until the cache was full).
        while self._values:
            oldest = next(iter(self._values.values()))
            if oldest[0] > now:
                break
            self._values.popitem(last=False)

    def forget(self, key: Hashable) -> None:
        self._values.pop(key, None)

    def __len__(self) -> int:
        return len(self._values)

    def _store(self, key: Hashable, task: asyncio.Task[V], ttl_of: Callable[[V], float] | None) -> None:
        self._inflight.pop(key, None)
        if task.cancelled() or task.exception() is not None:
            return  # failures are the caller's to see, never kept
        value = task.result()
        self.put(key, value, self.ttl if ttl_of is None else ttl_of(value))
