"""Pacers: space calls to one partner account so that concurrent workers together stay under its rate limit."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from decimal import Decimal

from claimbridge.jobs import JobDeferredError
from claimbridge.store import ConditionFailedError, Store


def account_key(partner: str, credential: str) -> str:
    """A pacer's key: the partner and a hash of the credential (rate limits are per account, not per store)."""
    return f"{partner}#{hashlib.sha256(credential.encode()).hexdigest()[:20]}"


class TablePacer:
    """Evenly spaced slots shared through the table: each call reserves the next slot with a conditional write.

    A slot further away than ``max_wait_s`` is not reserved; the job is deferred instead, so a function never
    sleeps for long and a slot is never wasted.
    """

    def __init__(
        self,
        store: Store,
        key: str,
        *,
        interval_s: float,
        max_wait_s: float = 10.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._store = store
        self._pk = f"PACER#{key}"
        self._interval = Decimal(str(interval_s))
        self._max_wait = max_wait_s
        self._clock = clock
        self._sleep = sleep

    def acquire(self) -> None:
        for _ in range(25):
            item = self._store.get(self._pk, "PACER", consistent=True)
            previous = item["next_at"] if item else None
            now = Decimal(str(round(self._clock(), 3)))
            slot = max(now, previous or now)
            wait = float(slot - now)
            if wait > self._max_wait:
                raise JobDeferredError(wait, "waiting for a pacer slot")
            try:
                self._store.put(
                    {"PK": self._pk, "SK": "PACER", "next_at": slot + self._interval, "ttl": int(slot) + 3600},
                    condition="attribute_not_exists(PK) OR next_at = :previous",
                    values={":previous": previous if previous is not None else Decimal(0)},
                )
            except ConditionFailedError:
                continue  # another worker took this slot; read the next one
            if wait > 0:
                self._sleep(wait)
            return
        raise JobDeferredError(float(self._interval), "pacer contention")


class LocalPacer:
    """Evenly spaced calls within one process. With the queue's maximum concurrency N, each process paces at
    limit / N, so the account's limit holds across workers without a shared write per call."""

    def __init__(
        self,
        interval_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._interval = interval_s
        self._clock = clock
        self._sleep = sleep
        self._next = 0.0
        self._lock = threading.Lock()

    def acquire(self) -> None:
        with self._lock:
            now = self._clock()
            slot = max(now, self._next)
            self._next = slot + self._interval
        if slot > now:
            self._sleep(slot - now)


class PacerChain:
    """Several limits on one account's calls (PostCo: per key and per shop): a slot from each, in turn."""

    def __init__(self, *pacers: TablePacer | LocalPacer) -> None:
        self._pacers = pacers

    def acquire(self) -> None:
        for pacer in self._pacers:
            pacer.acquire()
