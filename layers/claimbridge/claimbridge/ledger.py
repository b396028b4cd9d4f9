"""The ledger: every credit is one permanent row keyed by its business key, moved by one table of transitions.

``TRANSITIONS`` is the whole state machine (state x outcome -> next state); the credit flow and its tests both read it.
Every move is one conditional update on the row's ``version``, so of two workers that read the same row only one
moves it; the other gets ``LostRaceError`` and defers. A worker that is about to call a partner takes a lease
(``lease_until``) with its move, so a reader can tell a live attempt from an abandoned one.

| state | meaning | what moves it |
| --- | --- | --- |
| QUEUED | to do; nothing was sent (or what was sent surely did nothing) | a worker: take, wait, hold, refuse |
| PENDING | taken: the partner is being called under a lease | the call's outcome; an expired lease |
| UNKNOWN | the call may have reached the partner and gave no clear answer | evidence that names this credit |
| ISSUED | done, with the partner's card | final |
| FAILED | the partner refused for good (the reason says why) | final |
| HELD | stopped before any call (a guardrail), or an outcome nobody can know | the repaired cause; an operator |
| CANCELLED | an operator decided it is not to be paid | final |

Rows not final carry ``due_shard``/``due_at`` (the sparse ``DueIndex``: when the sweeper should nudge them if nothing
else has); every row carries ``store_state``/``state_since`` (the ``StateIndex``: a store's rows by state).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping
from decimal import Decimal
from enum import StrEnum
from typing import Any

from claimbridge.crypto import mask_secret
from claimbridge.money import wire_text
from claimbridge.store import ConditionFailedError, Store, due_shard, now_iso


class State(StrEnum):
    QUEUED = "QUEUED"
    PENDING = "PENDING"
    UNKNOWN = "UNKNOWN"
    ISSUED = "ISSUED"
    FAILED = "FAILED"
    HELD = "HELD"
    CANCELLED = "CANCELLED"


class Outcome(StrEnum):
    TAKE = "take"  # a worker takes the row to call the partner (with a lease)
    WAIT = "wait"  # something it needs is not known yet (the claim's customer): it stays queued and comes back
    HOLD = "hold"  # a guardrail stops it before any call, or a question only a person can answer
    REFUSE = "refuse"  # the partner refused for good (a revoked key, an unknown shop)
    APPLIED = "applied"  # the partner answered with the credit
    NOT_SENT = "not_sent"  # 429, refused connection: the partner surely did nothing; do it again
    UNCERTAIN = "uncertain"  # read timeout, 5xx, reset after send, 2xx without an id: it may have acted
    ABANDONED = "abandoned"  # the lease of a PENDING row ran out: its worker died somewhere around the call
    RECONCILE = "reconcile"  # a worker takes an UNKNOWN row to look for evidence (with a lease)
    FOUND = "found"  # evidence that names this credit shows it applied
    ABSENT = "absent"  # conclusive evidence that it did not apply: do it again
    NO_EVIDENCE = "no_evidence"  # nothing conclusive: an operator decides, with what was seen
    RELEASE = "release"  # give the lease back without deciding (a failed look-up)
    REPAIR = "repair"  # the cause of a guardrail's hold was fixed (Rise saved, the cap raised, the claim arrived)
    RETRY = "retry"  # an operator: try again (a held or failed credit)
    MARK_ISSUED = "mark_issued"  # an operator: the partner did make it (with its card id)
    CANCEL = "cancel"  # an operator: it is not to be paid


S, Oc = State, Outcome
TRANSITIONS: dict[tuple[State, Outcome], State] = {
    (S.QUEUED, Oc.TAKE): S.PENDING,
    (S.QUEUED, Oc.WAIT): S.QUEUED,
    (S.QUEUED, Oc.HOLD): S.HELD,
    (S.QUEUED, Oc.REFUSE): S.FAILED,
    (S.PENDING, Oc.APPLIED): S.ISSUED,
    (S.PENDING, Oc.NOT_SENT): S.QUEUED,
    (S.PENDING, Oc.REFUSE): S.FAILED,
    (S.PENDING, Oc.HOLD): S.HELD,  # the partner refused the credential: nothing was made
    (S.PENDING, Oc.UNCERTAIN): S.UNKNOWN,
    (S.PENDING, Oc.ABANDONED): S.UNKNOWN,
    (S.UNKNOWN, Oc.RECONCILE): S.UNKNOWN,
    (S.UNKNOWN, Oc.FOUND): S.ISSUED,
    (S.UNKNOWN, Oc.ABSENT): S.QUEUED,
    (S.UNKNOWN, Oc.NO_EVIDENCE): S.HELD,
    (S.UNKNOWN, Oc.RELEASE): S.UNKNOWN,
    (S.HELD, Oc.REPAIR): S.QUEUED,
    (S.HELD, Oc.RETRY): S.QUEUED,
    (S.FAILED, Oc.RETRY): S.QUEUED,
    (S.HELD, Oc.MARK_ISSUED): S.ISSUED,
    (S.FAILED, Oc.MARK_ISSUED): S.ISSUED,
    (S.QUEUED, Oc.CANCEL): S.CANCELLED,
    (S.HELD, Oc.CANCEL): S.CANCELLED,
    (S.FAILED, Oc.CANCEL): S.CANCELLED,
}
FINAL = frozenset({S.ISSUED, S.CANCELLED})  # nothing moves these
SETTLED = frozenset({S.ISSUED, S.FAILED, S.HELD, S.CANCELLED})  # no worker moves these; a repair or a person may
BY_A_PERSON = frozenset({Oc.RETRY, Oc.MARK_ISSUED, Oc.CANCEL})
MAX_HISTORY = 60  # the moves kept on a row
QUEUED_DUE_S = 600  # a QUEUED row still there after this is nudged by the sweeper
UNKNOWN_DUE_S = 180  # an UNKNOWN row is reconciled 30 s after it appears; nudged if it is still there after this
LEASED = frozenset({(S.QUEUED, Oc.TAKE), (S.UNKNOWN, Oc.RECONCILE)})  # moves that start a partner call
LEASE_S = 90  # longer than the credit worker's timeout: a live attempt is never taken over


class IllegalTransitionError(Exception):
    """A move the table does not allow: a bug, never a partner's or a sender's doing."""


class LostRaceError(Exception):
    """Another worker moved the row first (its version changed): re-read and decide again, or defer."""


def next_state(state: str, outcome: Outcome) -> State:
    try:
        return TRANSITIONS[(State(state), outcome)]
    except (KeyError, ValueError):
        raise IllegalTransitionError(f"{state} has no move for {outcome.value}") from None


def ledger_id(pk: str, sk: str) -> str:
    """The public id of a row: ``claim:<claim>:<resolution>:<purpose>``, ``bonus:<order>:bonus:<reason>``,
    ``postco:<return>:<purpose>``, or ``rivo:<store>:<Idempotency-Key>`` (a Rivo action: the note Rivo keeps names
    the store, so two stores on one Rivo account never read each other's)."""
    _, store_id, subject = pk.split("#", 2)  # CLAIM#c1, BONUS#1001, POSTCO#r1, RIVO#<key>
    kind, _, subject_id = subject.partition("#")
    if kind == "RIVO":
        return f"rivo:{store_id}:{subject_id}"
    return ":".join([kind.lower(), subject_id, *sk.removeprefix("LEDGER#").split("#")])


def _due_at(state: State, now: int, lease_until: int) -> int | None:
    if state == S.QUEUED:
        return now + QUEUED_DUE_S
    if state == S.PENDING:
        return lease_until + 60
    if state == S.UNKNOWN:
        return max(now + UNKNOWN_DUE_S, lease_until + 60)
    return None


class Ledger:
    """The ledger's rows in the table: created once, moved only through ``move``."""

    def __init__(self, store: Store, *, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._clock = clock

    def get(self, pk: str, sk: str) -> dict[str, Any] | None:
        return self._store.get(pk, sk)

    def create(self, row: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
        """Write a new QUEUED row unless its key exists; return the row that stands and whether it is new."""
        now = now_iso()
        item = {
            **row,
            "state": S.QUEUED.value,
            "version": 1,
            "created_at": row.get("created_at") or now,
            "item_type": "ledger",
            "due_shard": due_shard(row["ledger_id"]),
            "due_at": int(self._clock()) + QUEUED_DUE_S,
            "store_state": f"{row['store_id']}#{S.QUEUED.value}",
            "state_since": f"{now}#{row['ledger_id']}",
        }
        try:
            self._store.put(item, condition="attribute_not_exists(PK)")
        except ConditionFailedError:
            existing = self._store.get(row["PK"], row["SK"])
            if existing is None:  # deleted meanwhile (only a failed enqueue of the admin's does that): try once more
                self._store.put(item, condition="attribute_not_exists(PK)")
                return item, True
            return existing, False
        return item, True

    def lease_left(self, row: Mapping[str, Any]) -> float:
        return max(0.0, float(row.get("lease_until") or 0) - self._clock())

    def move(
        self,
        row: Mapping[str, Any],
        outcome: Outcome,
        *,
        reason: str | None = None,
        fields: Mapping[str, Any] | None = None,
        calls: list[dict[str, Any]] | None = None,
        audit: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Move ``row`` by ``outcome`` with one conditional update on its version; return the row as it now is."""
        state = State(row["state"])
        target = next_state(state, outcome)
        version = int(row.get("version") or 0)
        now, clock = now_iso(), int(self._clock())
        lease_until = clock + LEASE_S if (state, outcome) in LEASED else 0
        due = _due_at(target, clock, lease_until)
        values: dict[str, Any] = {
            "state": target.value,
            "version": version + 1,
            "updated_at": now,
            "lease_until": lease_until,
            "store_state": f"{row['store_id']}#{target.value}",
            "state_since": f"{now}#{row['ledger_id']}",
            "item_type": "ledger",
            **({"due_shard": due_shard(row["ledger_id"]), "due_at": due} if due is not None else {}),
            **({"state_reason": reason} if reason is not None else {}),
            **({"calls": calls} if calls is not None else {}),
            **({"settled_at": now} if target in SETTLED else {}),
            **dict(fields or {}),
        }
        values = {key: value for key, value in values.items() if value is not None}
        names = {f"#f{i}": key for i, key in enumerate(values)}
        sets = [f"#f{i} = :v{i}" for i in range(len(values))]
        step = {"at": now, "from": state.value, "outcome": outcome.value, "to": target.value}
        if reason:
            step["reason"] = reason
        # The row was read with its history and the version condition makes that the whole of it: kept bounded.
        sets.append("#history = :history")
        history = [*list(row.get("history") or [])[-(MAX_HISTORY - 1) :], step]
        extra: dict[str, Any] = {":history": history, ":expected": version}
        if audit is not None:
            sets.append("#audit = list_append(if_not_exists(#audit, :none), :audit)")
            extra[":audit"] = [{"at": now, "before": state.value, "after": target.value, **audit}]
            extra[":none"] = []
            names["#audit"] = "audit"
        removes = " REMOVE due_shard, due_at" if due is None else ""
        try:
            return self._store.update(
                row["PK"],
                row["SK"],
                expression="SET " + ", ".join(sets) + removes,
                names=names | {"#history": "history", "#version": "version"},
                values={f":v{i}": value for i, value in enumerate(values.values())} | extra,
                condition="#version = :expected" if version else "attribute_not_exists(#version)",
            )
        except ConditionFailedError:
            raise LostRaceError(ledger_id(row["PK"], row["SK"])) from None

    def note_conflict(self, row: Mapping[str, Any], note: str) -> None:
        """Record on the row a request that disagrees with it (another amount for the same key); moves nothing."""
        self._store.update(
            row["PK"],
            row["SK"],
            expression="SET conflicts = list_append(if_not_exists(conflicts, :none), :note)",
            values={":none": [], ":note": [{"at": now_iso(), "note": note}]},
        )

    def in_state(self, store_id: str, state: State, *, limit: int = 50, after: str | None = None) -> tuple[list, str]:
        """A store's rows in ``state``, oldest first, a page at a time (``StateIndex``); the next page's cursor."""
        rows, cursor = self._store.query_index(
            "StateIndex", "store_state", f"{store_id}#{state.value}", limit=limit, after=after
        )
        return rows, cursor


def public_ledger_row(item: dict[str, Any]) -> dict[str, Any]:
    """A ledger row as the API shows it: the card's code masked, never whole; money in its currency's digits."""
    hidden = (
        *("PK", "SK", "GSI1PK", "GSI1SK", "lease_until", "late_answer"),
        *("card_code", "card_code_sealed", "card_code_masked"),
    )
    row = {k: v for k, v in item.items() if k not in hidden}
    masked = card_code_masked(item)
    if masked:
        row["card_code"] = masked
    with contextlib.suppress(KeyError, ArithmeticError):
        row["amount"] = wire_text(Decimal(str(item["amount"])), str(item["currency"]))
    return row


def card_code_masked(item: dict[str, Any]) -> str | None:
    """The masked code, also for a row written before codes were sealed (its plain code is never shown)."""
    if item.get("card_code_masked"):
        return str(item["card_code_masked"])
    return mask_secret(str(item["card_code"])) if item.get("card_code") else None
