"""The returns flow's pure parts: the bonus's arithmetic and a run's record."""

from decimal import Decimal

import pytest

from claimbridge.clients.http import ServerError
from claimbridge.returns import SyncRun, bonus_amount


@pytest.mark.parametrize(
    ("bonus", "refund", "currency", "expected"),
    [
        ({"type": "fixed", "value": "5.00"}, "12.34", "USD", "5.00"),
        ({"type": "percent", "value": "10"}, "20.00", "USD", "2.00"),
        ({"type": "percent", "value": "10"}, "19.99", "USD", "2.00"),  # 1.999
        ({"type": "percent", "value": "10"}, "10.05", "USD", "1.01"),  # 1.005: half up, not to even
        ({"type": "percent", "value": "12.5"}, "0.04", "USD", "0.01"),  # 0.005
        ({"type": "percent", "value": "10"}, "1234", "JPY", "123"),  # no minor unit
        ({"type": "percent", "value": "15"}, "10.005", "KWD", "1.501"),  # three decimals: 1.50075
        ({"type": "percent", "value": "100"}, "33.33", "USD", "33.33"),
    ],
)
def test_a_bonus_is_fixed_or_a_percent_rounded_half_up_to_the_currency_minor_unit(bonus, refund, currency, expected):
    assert bonus_amount(bonus, Decimal(refund), currency) == Decimal(expected)


@pytest.mark.parametrize(
    ("bonus", "refund"),
    [(None, "20.00"), ({"type": "percent", "value": "10"}, "0.04"), ({"type": "percent", "value": "1"}, "0.49")],
)
def test_no_bonus_or_one_that_rounds_to_nothing_is_none(bonus, refund):
    assert bonus_amount(bonus, Decimal(refund), "USD") is None


def test_a_runs_record_keeps_its_counts_and_leaves_the_error_object_out():
    run = SyncRun("s1", "admin", "2026-11-26T00:00:00Z", outcome="failed", pages=2)
    run.error = ServerError("postco: 503", partner="postco", status=503)

    record = run.as_dict()

    assert record["outcome"] == "failed" and record["pages"] == 2
    assert "error" not in record and "again_s" not in record


def test_a_redemption_stays_a_candidate_unless_a_field_it_has_differs():
    from datetime import UTC, datetime

    from claimbridge.clients.rivo import Redemption
    from claimbridge.providers.rivo import _could_be

    since = datetime(2026, 11, 1, tzinfo=UTC)
    charged_its_own_cost = Redemption(id="1", points_amount=500, reward=None, applied_at="2026-11-02T00:00:00Z")
    other_reward = Redemption(id="2", points_amount=100, reward={"id": 12}, applied_at="2026-11-02T00:00:00Z")
    older = Redemption(id="3", points_amount=100, reward={"id": 11}, applied_at="2026-10-01T00:00:00Z")
    undated = Redemption(id="4", points_amount=100, reward={"id": 11}, applied_at="not a date")

    assert _could_be(charged_its_own_cost, {"reward_id": 11}, since)  # no points asked, no reward embedded
    assert not _could_be(other_reward, {"reward_id": 11, "points_amount": 100}, since)
    assert not _could_be(older, {"reward_id": 11, "points_amount": 100}, since)
    assert _could_be(undated, {"reward_id": 11, "points_amount": 100}, since)
