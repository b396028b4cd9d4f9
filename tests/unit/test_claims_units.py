"""Pure pieces of the claims flow: envelope parsing, the ticket, backoff, pacers."""

import random

import pytest

from claimbridge.claims import ticket_for
from claimbridge.jobs import JobDeferredError, backoff_delay
from claimbridge.pacing import LocalPacer, TablePacer
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


def test_the_local_pacer_spaces_calls_evenly():
    now = [100.0]
    slept: list[float] = []
    pacer = LocalPacer(0.5, clock=lambda: now[0], sleep=slept.append)

    for _ in range(3):
        pacer.acquire()

    assert slept == [0.5, 1.0]


class FakeTable:
    """A one-item table with DynamoDB's conditional put semantics."""

    def __init__(self):
        self.item = None
        self.conflicts = 0

    def get(self, pk, sk, consistent=True):
        return self.item

    def put(self, item, condition=None, values=None, names=None):
        if self.conflicts:
            self.conflicts -= 1
            raise ConditionFailedError("PACER")
        previous = (self.item or {}).get("next_at")
        if self.item is not None and previous != values[":previous"]:
            raise ConditionFailedError("PACER")
        self.item = item


def test_the_table_pacer_reserves_slots_retries_conflicts_and_defers_far_slots():
    from decimal import Decimal

    table = FakeTable()
    now = [1000.0]
    slept: list[float] = []
    pacer = TablePacer(table, "richpanel#k", interval_s=0.6, max_wait_s=1.5, clock=lambda: now[0], sleep=slept.append)

    pacer.acquire()
    table.conflicts = 1
    pacer.acquire()
    pacer.acquire()
    with pytest.raises(JobDeferredError) as deferred:
        pacer.acquire()

    assert slept == [0.6, 1.2]
    assert table.item["next_at"] == Decimal("1001.8")
    assert deferred.value.delay_s == pytest.approx(1.8)
