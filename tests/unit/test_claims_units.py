"""Pure pieces of the claims flow: envelope parsing, the ticket, backoff, pacers."""

import json
import random

import pytest

from claimbridge.claims import ticket_for
from claimbridge.jobs import JobDeferredError, backoff_delay
from claimbridge.pacing import TablePacer
from claimbridge.receiver import parse_envelope
from claimbridge.store import ConditionFailedError


def test_the_envelope_parser_normalises_the_topic_and_names_what_is_missing():
    envelope, _ = parse_envelope('{"id": "e1", "topic": "Claim/Created", "body": {}}')
    missing, problem = parse_envelope('{"id": "e1", "body": {}}')

    assert envelope is not None and envelope["topic"] == "claim.created"
    assert missing is None and problem == "missing field: topic"


CLAIM = {
    "claim_id": "c1",
    "claim_type": "STOLEN",
    "claim_state": "NEW",
    "customer_email": "a@b.co",
    "customer_name": "A B",
    "order_number": "77",
    "items": [],
    "order_items": [],
    "description": "x",
}


def test_the_ticket_goes_to_the_default_team_and_channel_and_falls_back_to_email():
    with_team = ticket_for(CLAIM, {"default_team_id": "t-uuid", "default_channel": "instagram"}, "https://d/c1")
    without = ticket_for(CLAIM, {}, "https://d/c1")

    assert (with_team["assignee_team_id"], with_team["via"]["channel"]) == ("t-uuid", "instagram")
    assert "assignee_team_id" not in without and without["via"]["channel"] == "email"
    assert "number" not in without["via"]["source"]["from"]


def test_backoff_grows_with_attempts_and_stays_within_its_cap():
    rng = random.Random(7)
    ceilings = [max(backoff_delay(n, rng=rng) for _ in range(200)) for n in (1, 3, 6, 12)]

    assert ceilings[0] == 5
    assert ceilings[1] <= 20 < ceilings[2] <= 160
    assert ceilings[3] <= 900


class FakeTable:
    """A one-item table with the pacer's conditional move as DynamoDB makes it (``Store.advance_pacer``)."""

    def __init__(self):
        self.item = None
        self.writes: list[str] = []

    def advance_pacer(self, pk, *, state, now, limit, step, ttl):
        self.writes.append(state)
        previous = (self.item or {}).get("next_at")
        found = "free" if previous is None or previous <= now else "near" if previous <= limit else "far"
        if found != state:
            raise ConditionFailedError(pk, item=dict(self.item) if self.item else None)
        slot = now if state == "free" else previous
        self.item = {"next_at": slot + step, "ttl": ttl}
        return slot


@pytest.fixture(autouse=True)
def _no_pacer_seen():
    """Each test's pacers start without what an earlier test's saw (a process remembers each account's pacer)."""
    from claimbridge import pacing

    pacing._SEEN.clear()
    yield
    pacing._SEEN.clear()


def test_a_pacer_takes_evenly_spaced_slots_waits_for_near_ones_and_refuses_far_ones_outside_a_job():
    from decimal import Decimal

    table = FakeTable()
    now = [1000.0]
    slept: list[float] = []
    pacer = TablePacer(table, "richpanel#k", interval_s=0.6, max_wait_s=1.5, clock=lambda: now[0], sleep=slept.append)

    pacer.acquire()
    pacer.acquire()
    pacer.acquire()
    with pytest.raises(JobDeferredError) as deferred:
        pacer.acquire()

    assert slept == [0.6, 1.2]
    assert table.item["next_at"] == Decimal("1001.8")  # the refused call took no slot
    assert 1.8 <= deferred.value.delay_s <= 3.6  # the slot's wait, jittered by up to as much again
    # outside a job the first write assumes nothing: a lost condition returns the pacer (and there, a far one ends it)
    assert table.writes == ["free", "free", "near", "free", "near", "free"]


def test_a_job_guesses_its_accounts_pacer_from_its_last_write_and_a_wrong_guess_costs_one_write():
    from decimal import Decimal

    from claimbridge.jobs import PACE_RESERVATIONS, PaceReservations

    table, now, slept, pacer = rise_pacer()
    token = PACE_RESERVATIONS.set(PaceReservations())
    try:
        pacer.acquire()  # free: the slot is now
        pacer.acquire()  # near, as its last write left it
        table.item = {"next_at": Decimal("1000.2")}  # (a pacer that went back: only a test's table does)
        now[0] = 1000.4
        pacer.acquire()  # guessed near, found free
    finally:
        PACE_RESERVATIONS.reset(token)

    assert table.writes == ["free", "near", "near", "free"]
    assert slept == [0.5] and table.item["next_at"] == Decimal("1000.9")


def rise_pacer(busy_until: str | None = None) -> tuple[FakeTable, list[float], list[float], TablePacer]:
    """Rise's pacer (2 a second, a second's wait at most) over a one-item table at t=1000; ``busy_until``: the end of
    the slots others took."""
    from decimal import Decimal

    table, now, slept = FakeTable(), [1000.0], []
    pacer = TablePacer(table, "rise#k", interval_s=0.5, max_wait_s=1.0, clock=lambda: now[0], sleep=slept.append)
    if busy_until:
        table.item = {"next_at": Decimal(busy_until)}
    return table, now, slept, pacer


def test_a_job_finding_its_account_busy_reserves_its_slot_and_comes_back_to_it():
    from decimal import Decimal

    from claimbridge.jobs import PACE_RESERVATIONS, PaceReservations

    table, now, slept, pacer = rise_pacer(busy_until="1003.0")  # three seconds of slots taken by others
    job = PaceReservations()
    token = PACE_RESERVATIONS.set(job)
    try:
        with pytest.raises(JobDeferredError) as deferred:
            pacer.acquire()
        carried = job.attribute()
        back = PaceReservations(json.loads(carried or "{}"))
        PACE_RESERVATIONS.set(back)
        now[0] = 1002.9  # the message came back a little before its slot
        reads_before = table.item["next_at"]
        pacer.acquire()
    finally:
        PACE_RESERVATIONS.reset(token)

    assert deferred.value.delay_s == 3  # to its slot (whole seconds, never late): no jitter, it holds the slot
    assert json.loads(carried or "{}") == {"PACER#rise#k": ["1003.0"]}
    assert table.item["next_at"] == reads_before == Decimal("1003.5")  # reserved once, not again on return
    assert slept == [pytest.approx(0.1)] and back.used == {"PACER#rise#k": 1}


def test_a_job_deferred_at_its_second_call_reserves_one_slot_for_the_call_still_to_make():
    from decimal import Decimal

    from claimbridge.jobs import PACE_RESERVATIONS, PaceReservations

    table, _, _, pacer = rise_pacer()
    job = PaceReservations()
    token = PACE_RESERVATIONS.set(job)
    try:
        pacer.acquire()  # its first call (a look-up) gets a slot at once
        table.item = {"next_at": Decimal("1005.0")}  # others fill the next five seconds
        with pytest.raises(JobDeferredError):
            pacer.acquire()  # its second call (the credit) must wait
    finally:
        PACE_RESERVATIONS.reset(token)

    # one: the call made is not made again (a ticket made stays made; a credit's card look-up is reused)
    assert job.held == {"PACER#rise#k": [Decimal("1005.0")]} and job.used == {"PACER#rise#k": 1}
    assert table.item["next_at"] == Decimal("1005.5")


def test_a_job_deferred_at_a_call_that_another_follows_reserves_both_slots_and_makes_both_calls_when_back():
    from decimal import Decimal

    from claimbridge.jobs import PACE_RESERVATIONS, PaceReservations
    from claimbridge.pacing import calls_after

    table, now, slept, pacer = rise_pacer(busy_until="1003.0")  # three seconds of slots taken by others
    job = PaceReservations()
    token = PACE_RESERVATIONS.set(job)
    try:
        with pytest.raises(JobDeferredError) as deferred, calls_after(1):
            pacer.acquire()  # the look-up, which the credit follows
        assert job.after == 0  # the hint ends with its block
        back = PaceReservations(json.loads(job.attribute() or "{}"))
        PACE_RESERVATIONS.set(back)
        now[0] = 1002.9
        with calls_after(1):
            pacer.acquire()  # the look-up, at its slot
        now[0] = 1003.05
        pacer.acquire()  # the credit, at the next: no second deferral, nothing more reserved
    finally:
        PACE_RESERVATIONS.reset(token)

    assert deferred.value.delay_s == 3
    assert json.loads(job.attribute() or "{}") == {"PACER#rise#k": ["1003.0", "1003.5"]}
    assert table.item["next_at"] == Decimal("1004.0")  # two consecutive slots, reserved once
    assert slept == [pytest.approx(0.1), pytest.approx(0.45)] and back.used == {"PACER#rise#k": 2}
    assert back.held == {"PACER#rise#k": []}


def test_a_call_not_deferred_takes_one_slot_whatever_follows_it():
    from decimal import Decimal

    from claimbridge.jobs import PACE_RESERVATIONS, PaceReservations
    from claimbridge.pacing import calls_after

    table, _, _, pacer = rise_pacer()
    token = PACE_RESERVATIONS.set(PaceReservations())
    try:
        with calls_after(1):
            pacer.acquire()
    finally:
        PACE_RESERVATIONS.reset(token)

    assert table.item["next_at"] == Decimal("1000.5")  # the next call takes its own slot when it comes
