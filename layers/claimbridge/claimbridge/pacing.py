"""Pacers: space calls to one partner account so that concurrent workers together stay under its rate limit."""

from __future__ import annotations

import contextlib
import hashlib
import math
import random
import time
from collections.abc import Callable, Iterator
from decimal import Decimal

from claimbridge.jobs import PACE_RESERVATIONS, JobDeferredError, PaceReservations
from claimbridge.store import ConditionFailedError, PacerState, Store

PACE_WAIT_S = 1.0  # the longest a worker waits for its account's slot; past it the job is deferred, the worker freed
PACER_TTL_S = 86_400  # a pacer unused for a day goes (no account's backlog reserves a day of slots)
SEEN_SIZE = 1024

# Each account's next free slot as this process last saw it: which conditional write to try first (slots only move
# on, so a pacer seen far away is at least that far). A guess: a wrong one costs a lost condition that returns the
# pacer as it is, and the next write is the right one.
_SEEN: dict[str, Decimal] = {}


def _remember(pk: str, next_at: Decimal) -> None:
    if len(_SEEN) >= SEEN_SIZE and pk not in _SEEN:
        _SEEN.clear()
    _SEEN[pk] = next_at


@contextlib.contextmanager
def calls_after(calls: int) -> Iterator[None]:
    """Within this block each paced call is followed by ``calls`` more to the same account in this pass (a credit's
    card look-up by the credit itself): a job deferred at it reserves their slots with its own, consecutive, so that
    it comes back once and makes them all, instead of once per call."""
    reservations = PACE_RESERVATIONS.get()
    if reservations is None:
        yield
        return
    before, reservations.after = reservations.after, calls
    try:
        yield
    finally:
        reservations.after = before


def account_key(partner: str, credential: str) -> str:
    """A pacer's key: the partner and a hash of the credential (rate limits are per account, not per store)."""
    return f"{partner}#{hashlib.sha256(credential.encode()).hexdigest()[:20]}"


class TablePacer:
    """Evenly spaced slots shared through the table: each call takes the next slot with one conditional write that
    moves the account's next free slot on (``Store.advance_pacer``): under contention the server does the arithmetic,
    so concurrent workers do not lose writes to each other and read again.

    A worker waits at most ``max_wait_s`` for its slot. When the next free slot is further away, a job (run by the
    job runner) reserves it anyway and is deferred to it: the job comes back to a slot already its own
    (``PaceReservations``, carried on its message), so a busy account's backlog waits in the queue in slot order,
    each job deferred once, no worker sleeping and no slot lost. Outside a job (the admin API) nothing is reserved:
    the call is refused with ``JobDeferredError`` for its caller to answer.
    """

    def __init__(
        self,
        store: Store,
        key: str,
        *,
        interval_s: float,
        max_wait_s: float = PACE_WAIT_S,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._store = store
        self._pk = f"PACER#{key}"
        self._interval = Decimal(str(interval_s))
        self._max_wait = Decimal(str(max_wait_s))
        self._clock = clock
        self._sleep = sleep

    def acquire(self) -> None:
        reservations = PACE_RESERVATIONS.get()
        now = Decimal(str(round(self._clock(), 3)))
        held = reservations.take(self._pk) if reservations is not None else None
        if held is not None and reservations is not None:
            wait = float(held - now)
            if held - now > self._max_wait:  # back before its slot (SQS delays at most 15 minutes): deferred again
                reservations.hold(self._pk, [held])
                raise JobDeferredError(max(1, math.floor(wait)), "waiting for its reserved pacer slot")
            self._took(reservations, wait)
            return
        # Outside a job a far slot is refused without a write, so there only the table's answer says it is far.
        seen = _SEEN.get(self._pk) if reservations is not None else None
        for _ in range(25):
            now = Decimal(str(round(self._clock(), 3)))
            limit = now + self._max_wait
            state: PacerState = "free" if seen is None or seen <= now else "near" if seen <= limit else "far"
            if state == "far" and reservations is None:
                assert seen is not None  # far: seen past the limit
                wait = float(seen - now)
                raise JobDeferredError(wait + random.uniform(0, min(wait, 5.0)), "waiting for a pacer slot")
            # A slot for this call, and for those that surely follow it in the same pass when it is deferred
            # (``calls_after``). A job deferred at a later call does not redo the earlier ones (a ticket made is not
            # made again; a credit's card look-up is reused), so those need no slot when it comes back.
            count = 1 + (reservations.after if state == "far" and reservations is not None else 0)
            step = count * self._interval
            try:
                slot = self._store.advance_pacer(
                    self._pk, state=state, now=now, limit=limit, step=step, ttl=int(now) + PACER_TTL_S
                )
            except ConditionFailedError as lost:  # the pacer was not as last seen: try the write its state needs
                seen = (lost.item or {}).get("next_at")
                continue
            _remember(self._pk, slot + step)
            wait = float(slot - now)
            if state == "far" and reservations is not None:
                reservations.hold(self._pk, [slot + n * self._interval for n in range(count)])
                # Back a little early rather than late (SQS delays are whole seconds): it waits out the rest itself.
                raise JobDeferredError(
                    max(1, math.floor(wait)), "the account is busy: deferred to the slot it reserved"
                )
            self._took(reservations, wait)
            return
        raise JobDeferredError(float(self._interval), "pacer contention")

    def _took(self, reservations: PaceReservations | None, wait: float) -> None:
        if wait > 0:
            self._sleep(wait)
        if reservations is not None:
            reservations.used[self._pk] = reservations.used.get(self._pk, 0) + 1


class PacerChain:
    """Several limits on one account's calls (PostCo: per key and per shop): a slot from each, in turn."""

    def __init__(self, *pacers: TablePacer) -> None:
        self._pacers = pacers

    def acquire(self) -> None:
        for pacer in self._pacers:
            pacer.acquire()
