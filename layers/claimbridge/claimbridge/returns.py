"""PostCo returns into store credit plus the merchant's bonus (seeds/001; shared/CONTRACTS.md "PostCo").

PostCo has no webhooks and no filter by time, so a sync of one store pages its returns newest first:

1. **New returns**, down to the store's ``checkpoint`` (less ``OVERLAP_S``, for a return dated a little before it
   appeared). Each return seen is recorded once (``STORE#<store>#POSTCO#<id>`` / ``RETURN``); one that qualifies gets
   its ledger rows, ``postco:<id>:credit`` (100% of the refund) and, when the store's bonus is on,
   ``postco:<id>:bonus``, and its credit job is queued. After each page the place reached is saved (``resume``); the
   checkpoint moves only when the run reaches the old one, so a crash or a stop mid-run redoes or resumes pages
   (their returns and rows exist: nothing twice) and never skips one.
2. **Revisits**: returns seen while open are watched (``StateIndex``: ``<store>#RETURN_WATCH``), since they resolve
   later. A run pages a little deeper for the oldest of them, then reads a few more one by one.

Nothing older than the store's ``floor`` is ever credited: the moment PostCo was configured, or the merchant's
explicit ``backfill_since``. The credit flow (``claimbridge.credits``) pays the rows with the ledger's state machine;
the bonus goes onto the card the credit landed on, so it follows its credit. A return that changes after it
qualified is checked by the credit flow before any call (not credited if it no longer qualifies); one that changes
after its credit is recorded on its timeline and on the credit's row for an operator, never reversed.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from claimbridge.bounds import check_id, check_store_id
from claimbridge.clients.http import AuthError, IntegrationError, IntegrationStatusError
from claimbridge.clients.postco import PostcoClient, ReturnOrder
from claimbridge.credits import new_row, release_bonus
from claimbridge.crypto import customer_key
from claimbridge.directory import Integration, StoreDirectory, StoreInfo
from claimbridge.errors import ConflictError, ResourceNotFoundError, UnavailableError
from claimbridge.jobs import JobDeferredError
from claimbridge.ledger import Ledger, LostRaceError, Outcome, State, public_ledger_row
from claimbridge.models.credits import CreditJob
from claimbridge.money import MoneyError, minor_unit, parse_amount
from claimbridge.observability import logger, metrics
from claimbridge.store import ConditionFailedError, Store, customer_pk, iso_at, store_pk

SYNC_SK = "SYNC#postco"
OVERLAP_S = 15 * 60  # a return dated up to this long before the checkpoint is still looked at
LEASE_S = 150  # longer than the sync function's timeout: a live run is never joined by a second one
STOP_MARGIN_S = 40  # a run stops paging (and saves its place) with this much of the function's time left:
# more than one page's worst case (two pacer waits of 10 s, a 13 s call, a hundred returns' writes)
MAX_REVISIT_PAGES = 5  # pages past the new returns, for the watched ones further down
MAX_REVISIT_READS = 10  # watched returns read one by one per run (PostCo allows 100 requests a minute)
WATCH_LIMIT = 1000  # watched returns read per run, the least recently checked first
WATCH_DAYS = 90  # an open return older than this is no longer watched (said on its timeline)
FUTURE_SKEW_S = 300  # a return dated further ahead than this does not move the checkpoint past now

PostcoFactory = Callable[[StoreInfo, Integration], PostcoClient]
CreditEnqueuer = Callable[[CreditJob], None]


def return_pk(store_id: str, return_id: str | int) -> str:
    return f"STORE#{store_id}#POSTCO#{return_id}"


def watch_key(store_id: str) -> str:
    return f"{store_id}#RETURN_WATCH"


def bonus_amount(bonus: Mapping[str, Any] | None, refund: Decimal, currency: str) -> Decimal | None:
    """The store's bonus for a refund: a fixed amount, or a percent of the refund rounded half up to the currency's
    minor unit; None when the store has no bonus or it comes to nothing."""
    if not bonus:
        return None
    value = Decimal(str(bonus["value"]))
    amount = value if bonus["type"] == "fixed" else refund * value / 100
    rounded = amount.quantize(Decimal(1).scaleb(-minor_unit(currency)), rounding=ROUND_HALF_UP)
    return rounded if rounded > 0 else None


def _when(text: Any) -> datetime | None:
    try:
        moment = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass
class SyncRun:
    """What one run of a store's sync did; kept on the store's sync state as ``last_run``."""

    store_id: str
    reason: str
    started_at: str
    outcome: str = "running"  # done | partial | busy | skipped | invalid | failed
    detail: str = ""
    pages: int = 0
    seen: int = 0
    new: int = 0
    changed: int = 0
    qualifying: int = 0
    credits_queued: int = 0
    revisited: int = 0
    checkpoint: str | None = None
    finished_at: str | None = None
    error: IntegrationError | None = field(default=None, repr=False)  # to raise for the job runner
    again_s: float | None = None  # continue after this long (a stop before the end)

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("error", "again_s")}


@dataclass
class _Pass:
    """One run's working state: the floor and target, what was seen, the newest date."""

    info: StoreInfo
    settings: dict[str, Any]
    floor: datetime
    target: datetime
    watched: dict[str, dict[str, Any]]
    seen_ids: set[str] = field(default_factory=set)
    newest: datetime | None = None
    oldest: datetime | None = None
    cursor: str | None = None  # the page after the last one read, for the revisits
    previous: datetime | None = None  # the checkpoint this run started from


class ReturnSync:
    def __init__(
        self,
        *,
        store: Store,
        directory: StoreDirectory,
        postco: PostcoFactory,
        enqueue_credit: CreditEnqueuer,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._directory = directory
        self._postco = postco
        self._enqueue_credit = enqueue_credit
        self._ledger = Ledger(store, clock=clock)
        self._clock = clock

    def run(self, store_id: str, *, reason: str = "schedule", time_left: Callable[[], float] | None = None) -> SyncRun:
        """Sync one store's returns now; never raises for PostCo's failures (they are on the result)."""
        run = SyncRun(store_id, reason, iso_at(self._clock()))
        info, integration = self._directory.store_with(store_id, "postco")
        if info is None or integration is None:
            return self._ended(run, "skipped", "PostCo is not configured for this store")
        if not integration.valid:
            return self._ended(run, "invalid", f"the PostCo integration is invalid: {integration.reason}")
        owner = uuid.uuid4().hex
        state = self._take(store_id, owner)
        if state is None:
            return self._ended(run, "busy", "another run of this store's sync holds it; it covers this one")
        try:
            client = self._postco(info, integration)
            work = self._plan(state, info, integration)
            clock_left = time_left or (lambda: float("inf"))
            self._new_returns(client, work, state, run, clock_left)
            if run.outcome == "running":
                self._revisit(client, work, run, clock_left)
                run.outcome = "done"
        except AuthError as error:
            reason_text = f"PostCo refused the key during a sync: {error}"
            self._directory.mark_invalid(store_id, "postco", reason_text)
            run.outcome, run.detail = "invalid", reason_text
        except IntegrationError as error:
            run.outcome, run.detail, run.error = "failed", str(error), error
        except JobDeferredError as deferred:  # PostCo's pacer has no slot soon: the run continues later
            run.outcome, run.detail, run.again_s = "partial", str(deferred), deferred.delay_s
        except Exception as error:  # a bug or AWS failing: recorded as such, and raised for the runner
            run.outcome, run.detail = "failed", f"{type(error).__name__}: {str(error)[:200]}"
            raise
        finally:
            self._release(store_id, owner, run)
        self._count(run)
        return run

    # -- the run's plan: where it starts and how far down it goes ------------------------------------------------

    def _plan(self, state: dict[str, Any], info: StoreInfo, integration: Integration) -> _Pass:
        """The floor (nothing older is credited: when PostCo was configured, or the merchant's ``backfill_since``)
        and the target this run pages down to (the checkpoint less the overlap; the floor on a first run, or once
        for a new backfill)."""
        settings = integration.settings
        floor = _when(integration.created_at) or datetime.fromtimestamp(self._clock(), UTC)
        backfill = _when(settings.get("backfill_since"))
        if backfill is not None:
            floor = min(floor, backfill)
        new_backfill = backfill is not None and settings.get("backfill_since") != state.get("backfill_done")
        checkpoint = _when(state.get("checkpoint"))
        overlap = checkpoint - timedelta(seconds=OVERLAP_S) if checkpoint is not None else floor
        target = floor if new_backfill else max(floor, overlap)
        return _Pass(info, settings, floor, target, self._watched(info.store_id), previous=checkpoint)

    def _watched(self, store_id: str) -> dict[str, dict[str, Any]]:
        watched: dict[str, dict[str, Any]] = {}
        cursor: str | None = None
        while len(watched) < WATCH_LIMIT:
            items, cursor = self._store.query_index("StateIndex", "store_state", watch_key(store_id), after=cursor)
            watched.update({str(item["return_id"]): item for item in items})
            if not cursor:
                break
        return watched

    # -- phase 1: new returns, newest first, down to the target -----------------------------------------------------

    def _new_returns(
        self,
        client: PostcoClient,
        work: _Pass,
        state: dict[str, Any],
        run: SyncRun,
        time_left: Callable[[], float],
    ) -> None:
        resume = state.get("resume") or {}
        cursor: str | None = None
        if resume and resume.get("target") == _iso(work.target):  # the same run, stopped: go on from there
            cursor = resume.get("cursor")
            work.newest = _when(resume.get("newest"))
        resumed = cursor
        while True:
            if time_left() < STOP_MARGIN_S:
                run.outcome, run.detail, run.again_s = "partial", "the function's time ran short; resumes here", 1.0
                return
            try:
                page = client.list_returns(cursor=cursor)
            except IntegrationStatusError as error:
                if error.status != 400 or cursor is None or cursor != resumed:
                    raise  # only a cursor saved by an earlier run may have expired; anything else is a failure
                logger.warning("PostCo refused a saved cursor; paging again from the newest", error=str(error))
                cursor = resumed = None
                continue
            run.pages += 1
            for order in page.data:
                self._see(order, work, run, create=True)
            cursor = page.next_cursor
            # Down to the target once a whole page is older than it (one return dated back does not end the run)
            dated = [when for order in page.data if (when := _when(order.submitted_at)) is not None]
            reached = bool(dated) and max(dated) < work.target
            if reached or not page.has_more or not cursor:
                self._checkpoint(work, run)
                work.cursor = cursor if page.has_more else None
                return
            self._save(
                work.info.store_id,
                {"resume": {"cursor": cursor, "target": _iso(work.target), "newest": _newest(work)}},
            )

    def _checkpoint(self, work: _Pass, run: SyncRun) -> None:
        newest = work.newest
        ahead = datetime.fromtimestamp(self._clock() + FUTURE_SKEW_S, UTC)
        if newest is not None and newest > ahead:  # a return dated in the future must not hide the ones after it
            newest = ahead
        checkpoint = max(filter(None, [newest, work.floor, work.previous]))
        run.checkpoint = _iso(checkpoint)
        fields: dict[str, Any] = {"checkpoint": run.checkpoint, "floor": _iso(work.floor), "resume": {}}
        if work.settings.get("backfill_since"):
            fields["backfill_done"] = work.settings["backfill_since"]
        self._save(work.info.store_id, fields)

    # -- phase 2: the watched returns (seen open), further down or one by one -----------------------------------

    def _revisit(self, client: PostcoClient, work: _Pass, run: SyncRun, time_left: Callable[[], float]) -> None:
        pending = {rid: item for rid, item in work.watched.items() if rid not in work.seen_ids}
        cursor = work.cursor
        pages = 0
        while cursor and pending and pages < MAX_REVISIT_PAGES and time_left() > STOP_MARGIN_S:
            deepest = min((_when(item.get("submitted_at")) for item in pending.values()), default=None, key=_sort_key)
            if deepest is None or (work.oldest is not None and deepest >= work.oldest):
                break
            page = client.list_returns(cursor=cursor)
            pages += 1
            run.pages += 1
            for order in page.data:
                if pending.pop(str(order.id), None) is not None:
                    self._see(order, work, run, create=False)
                    run.revisited += 1
            cursor = page.next_cursor if page.has_more else None
        by_age = sorted(pending.values(), key=lambda item: str(item.get("last_checked_at", "")))
        for item in by_age[:MAX_REVISIT_READS]:
            if time_left() < STOP_MARGIN_S:
                break  # the next run reads the rest (the least recently checked first)
            try:
                order = client.get_return(int(item["return_id"]))
            except IntegrationStatusError as error:
                if error.status != 404:
                    raise
                self._unwatch(work.info.store_id, str(item["return_id"]), note="PostCo no longer has this return")
                continue
            self._see(order, work, run, create=False)
            run.revisited += 1

    # -- one return ----------------------------------------------------------------------------------------------

    def _see(self, order: ReturnOrder, work: _Pass, run: SyncRun, *, create: bool) -> None:
        store_id = work.info.store_id
        rid = str(order.id)
        submitted = _when(order.submitted_at)
        if submitted is not None:
            work.oldest = submitted if work.oldest is None else min(work.oldest, submitted)
            work.newest = submitted if work.newest is None else max(work.newest, submitted)
        if rid in work.seen_ids:
            return  # a page boundary shifted by a new return: the same one twice in a run
        work.seen_ids.add(rid)
        run.seen += 1
        pk = return_pk(store_id, rid)
        item = self._store.get(pk, "RETURN")
        if item is None:
            if not create or submitted is None or submitted < work.floor:
                if create and submitted is None:
                    logger.warning("PostCo return without a usable submitted_at; not credited", return_id=rid)
                return  # from before the floor (history), or unknown here: never credited
            item = self._record(store_id, order)
            if item is None:
                return
            run.new += 1
            fresh = True
        elif _snapshot(order) != {k: item.get(k) for k in _snapshot(order)}:
            item = self._changed(store_id, order, item)
            run.changed += 1
            fresh = True
        else:
            fresh = False
        if order.qualifies:
            run.qualifying += 1
            if fresh or not item.get("credit_ledger_id"):  # its rows exist and its job went once they are marked
                run.credits_queued += self._credit(work, order, item)
        self._watch(store_id, order, item)

    def _record(self, store_id: str, order: ReturnOrder) -> dict[str, Any] | None:
        now = iso_at(self._clock())
        item = {
            "PK": return_pk(store_id, order.id),
            "SK": "RETURN",
            "item_type": "return",
            "store_id": store_id,
            "return_id": str(order.id),
            **_snapshot(order),
            "order_id": order.order_id,
            "order_name": order.order_name,
            "customer_email": (order.cust_email or "").strip().lower() or None,
            "customer_name": _name(order),
            "submitted_at": order.submitted_at,
            "first_seen_at": now,
            "last_checked_at": now,
        }
        try:
            self._store.put(item, condition="attribute_not_exists(PK)")
        except ConditionFailedError:  # another run recorded it first
            return self._store.get(item["PK"], "RETURN")
        return item

    def _changed(self, store_id: str, order: ReturnOrder, item: dict[str, Any]) -> dict[str, Any]:
        before, after = _describe(item), _describe(_snapshot(order))
        values = {**_snapshot(order), "last_checked_at": iso_at(self._clock())}
        updated = self._store.set_fields(item["PK"], "RETURN", values)
        note = f"PostCo changed the return: {before} → {after}"
        if item.get("credit_ledger_id"):
            credit = self._ledger.get(item["PK"], "LEDGER#credit")
            state = credit["state"] if credit else "missing"
            if credit is not None and state in (State.ISSUED, State.PENDING, State.UNKNOWN):
                note += f"; its credit was already {state.lower()}: nothing is reversed, an operator decides"
                metrics.add_metric(name="ReturnChangedAfterCredit", unit="Count", value=1)
                logger.warning("return changed after its credit", store_id=store_id, return_id=item["return_id"])
                self._ledger.note_conflict(credit, note)
            elif not order.qualifies:
                note += f"; its credit ({state}) is not paid while it does not qualify"
        self._timeline(store_id, item["return_id"], note)
        return updated

    def _credit(self, work: _Pass, order: ReturnOrder, item: dict[str, Any]) -> int:
        """The return's ledger rows (credit, then bonus), created once; its credit queued while it waits. How many
        jobs were queued."""
        info = work.info
        pk = return_pk(info.store_id, order.id)
        currency = (order.currency or info.profile.get("currency") or "USD").upper()
        common = {
            "provider": "rise",  # PostCo's store credit is Rise's (seeds/001), whatever the store's claim credits use
            "return_id": str(order.id),
            "order_id": order.order_id,
            "order_number": order.order_name,
            "customer_email": item.get("customer_email"),
            "customer_name": item.get("customer_name"),
            "customer_id": self._customer_id(info, item.get("customer_email")),
        }
        credit_row = new_row(
            info,
            pk=pk,
            sk="LEDGER#credit",
            kind="return_credit",
            amount=order.refund_amount,
            currency=currency,
            **common,
        )
        credit, created = self._ledger.create(credit_row)
        if created:
            self._timeline(info.store_id, str(order.id), f"qualified: credit {credit['amount']} {currency} queued")
        try:
            refund = parse_amount(order.refund_amount, currency)
        except MoneyError:
            refund = None  # the credit row is held for its amount; no bonus is worked out from it
        bonus = bonus_amount(work.settings.get("bonus"), refund, currency) if refund is not None else None
        # Only with its credit: never for a return marked done (a change after its credit, a bonus turned on later)
        if bonus is not None and (created or not item.get("credit_ledger_id")):
            rule = work.settings["bonus"]
            row = new_row(
                info,
                pk=pk,
                sk="LEDGER#bonus",
                kind="return_bonus",
                amount=bonus,
                currency=currency,
                bonus_rule=f"{rule['type']} {rule['value']}",
                **common,
            )
            _, bonus_created = self._ledger.create(row)
            if bonus_created:
                self._timeline(info.store_id, str(order.id), f"bonus {bonus} {currency} ({row['bonus_rule']}) queued")
        queued = self._send(info.store_id, credit)
        current = self._ledger.get(pk, "LEDGER#credit") or credit
        release_bonus(current, ledger=self._ledger, enqueue_credit=self._enqueue_credit, lifting="return_changed")
        # Marked last: a crash before this leaves the return to be done again by the next run (idempotently).
        item.update(self._store.set_fields(pk, "RETURN", {"credit_ledger_id": credit["ledger_id"]}))
        return queued

    def _send(self, store_id: str, credit: dict[str, Any]) -> int:
        """Queue the credit while it waits; lift a hold for a return that changed and qualifies again."""
        if credit["state"] == State.HELD and credit.get("hold_code") == "return_changed":
            try:
                credit = self._ledger.move(credit, Outcome.REPAIR, reason="the return qualifies again")
            except LostRaceError:
                return 0
        if credit["state"] != State.QUEUED:
            return 0
        self._enqueue_credit(CreditJob(store_id=store_id, pk=credit["PK"], sk=credit["SK"]))
        return 1

    def _customer_id(self, info: StoreInfo, email: str | None) -> str | None:
        """The customer's Shopify id, when an order or claim of theirs told us (Rise finds a loyalty card by it)."""
        if not email:
            return None
        for known in self._store.query_customer(
            customer_pk(info.store_id, customer_key(info.customer_hash_key, email))
        ):
            if known.get("customer_id"):
                return str(known["customer_id"])
        return None

    def _watch(self, store_id: str, order: ReturnOrder, item: dict[str, Any]) -> None:
        """Open returns are watched (they resolve later), and qualifying ones until their credit is settled."""
        watch = order.is_open
        submitted = _when(item.get("submitted_at"))
        if (
            watch
            and submitted is not None
            and submitted < datetime.fromtimestamp(self._clock(), UTC) - timedelta(days=WATCH_DAYS)
        ):
            if item.get("store_state"):
                self._unwatch(
                    store_id, str(item["return_id"]), note=f"still open after {WATCH_DAYS} days: no longer watched"
                )
            return
        if order.qualifies:
            credit = self._ledger.get(item["PK"], "LEDGER#credit")
            watch = credit is not None and credit["state"] not in (State.ISSUED, State.CANCELLED)
        now = iso_at(self._clock())
        if watch:
            self._store.set_fields(
                item["PK"],
                "RETURN",
                {
                    "store_state": watch_key(store_id),
                    "state_since": f"{now}#{item['return_id']}",  # read back least recently checked first
                    "last_checked_at": now,
                },
            )
        elif item.get("store_state"):
            self._unwatch(store_id, str(item["return_id"]))

    def _unwatch(self, store_id: str, rid: str, *, note: str | None = None) -> None:
        self._store.update(
            return_pk(store_id, rid),
            "RETURN",
            expression="REMOVE store_state, state_since SET last_checked_at = :at",
            values={":at": iso_at(self._clock())},
        )
        if note:
            self._timeline(store_id, rid, note)

    def _timeline(self, store_id: str, rid: str, note: str) -> None:
        self._store.add_note(return_pk(store_id, rid), note=note, at=iso_at(self._clock()))

    # -- the store's sync state: a lease against a second run, and the place reached ------------------------------

    def _take(self, store_id: str, owner: str) -> dict[str, Any] | None:
        now = self._clock()
        try:
            return self._store.update(
                store_pk(store_id),
                SYNC_SK,
                expression="SET lease_until = :until, lease_owner = :owner, store_id = :store",
                values={":until": int(now + LEASE_S), ":owner": owner, ":now": int(now), ":store": store_id},
                condition="attribute_not_exists(lease_until) OR lease_until < :now",
            )
        except ConditionFailedError:
            return None

    def _release(self, store_id: str, owner: str, run: SyncRun) -> None:
        run.finished_at = iso_at(self._clock())
        try:
            self._store.update(
                store_pk(store_id),
                SYNC_SK,
                expression="REMOVE lease_until, lease_owner SET last_run = :run",
                values={":run": run.as_dict(), ":owner": owner},
                condition="lease_owner = :owner",
            )
        except ConditionFailedError:  # our lease ran out and another run took it: its own record stands
            logger.warning("sync lease lost before the end of the run", store_id=store_id)

    def _save(self, store_id: str, fields: dict[str, Any]) -> None:
        self._store.set_fields(store_pk(store_id), SYNC_SK, fields)

    def _ended(self, run: SyncRun, outcome: str, detail: str) -> SyncRun:
        run.outcome, run.detail, run.finished_at = outcome, detail, iso_at(self._clock())
        logger.info("postco sync not run", store_id=run.store_id, outcome=outcome, detail=detail)
        return run

    def _count(self, run: SyncRun) -> None:
        metrics.add_metric(name="ReturnsSeen", unit="Count", value=run.seen)
        metrics.add_metric(name="ReturnCreditsQueued", unit="Count", value=run.credits_queued)
        logger.info("postco sync", run=run.as_dict())


class ReturnsAdmin:
    """The admin's side of returns: a store's sync run now (queued for the sync function), one return with its
    ledger rows, their calls and its timeline."""

    def __init__(
        self, *, store: Store, enqueue_sync: Callable[[str, str], None], clock: Callable[[], float] = time.time
    ):
        self._store = store
        self._enqueue_sync = enqueue_sync
        self._clock = clock

    def request_sync(self, store_id: str) -> dict[str, Any]:
        check_store_id(store_id)
        if self._store.get_store_profile(store_id) is None:
            raise ResourceNotFoundError(f"store {store_id} not found")
        integration = self._store.get_integration(store_id, "postco")
        if integration is None:
            raise ResourceNotFoundError(f"postco is not configured for store {store_id}")
        if integration.get("status") == "invalid":
            raise ConflictError(
                f"the PostCo integration is invalid ({integration.get('status_reason') or 'key refused'}): "
                "save a working key first; no sync was queued"
            )
        try:
            self._enqueue_sync(store_id, "admin")
        except Exception as error:
            raise UnavailableError("could not queue the sync; nothing was queued, retry") from error
        logger.info("postco sync requested", store_id=store_id)
        return {"store_id": store_id, "queued": True, "sync": sync_state(self._store, store_id, self._clock())}

    def view(self, store_id: str, return_id: str) -> dict[str, Any]:
        check_store_id(store_id)
        check_id("returnId", return_id, limit=64)
        items = self._store.query_partition(return_pk(store_id, return_id))
        seen = next((item for item in items if item["SK"] == "RETURN"), None)
        if seen is None:
            raise ResourceNotFoundError(f"no PostCo return {return_id} seen for store {store_id}")
        hidden = ("PK", "SK", "store_state", "state_since", "item_type")
        return {
            "return": {k: v for k, v in seen.items() if k not in hidden},
            "watched": bool(seen.get("store_state")),
            "ledger": [public_ledger_row(item) for item in items if item["SK"].startswith("LEDGER#")],
            "timeline": [{"at": item["at"], "note": item["note"]} for item in items if item["SK"].startswith("TL#")],
        }


def sync_state(store: Store, store_id: str, now: float) -> dict[str, Any]:
    """The store's sync as the admin shows it: the checkpoint, whether a run holds it now, the last run."""
    item = store.get(store_pk(store_id), SYNC_SK) or {}
    return {
        "checkpoint": item.get("checkpoint"),
        "floor": item.get("floor"),
        "backfill_done": item.get("backfill_done"),
        "running": int(item.get("lease_until") or 0) > now,
        "resume_pending": bool(item.get("resume")),
        "last_run": {k: int(v) if isinstance(v, Decimal) else v for k, v in (item.get("last_run") or {}).items()}
        or None,
    }


def _snapshot(order: ReturnOrder) -> dict[str, Any]:
    """What makes a return qualify, as recorded: a change in any of it is a change of the return."""
    return {
        "status": order.status,
        "refund_method": order.refund_method or "",
        "refund_amount": "" if order.refund_amount is None else str(order.refund_amount),
        "currency": order.currency or "",
        "qualifies": order.qualifies,
    }


def _describe(values: Mapping[str, Any]) -> str:
    amount = f" {values.get('refund_amount')} {values.get('currency') or ''}".rstrip()
    return f"{values.get('status') or '?'} ({values.get('refund_method') or 'no refund method'}{amount})"


def _name(order: ReturnOrder) -> str | None:
    name = " ".join(part for part in (order.cust_first_name, order.cust_last_name) if part)
    return name.strip() or None


def _newest(work: _Pass) -> str | None:
    return _iso(work.newest) if work.newest is not None else None


def _sort_key(moment: datetime | None) -> datetime:
    return moment or datetime.max.replace(tzinfo=UTC)
