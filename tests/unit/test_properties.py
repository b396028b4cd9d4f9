"""Properties, checked by Hypothesis over many generated inputs: the widget's signed message is unambiguous and its
signature verifies only what was signed; money parsing is exact, total (a value or MoneyError, nothing else) and
round-trips through its wire forms."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import example, given, settings
from hypothesis import strategies as st

from claimbridge.crypto import sign_widget, widget_message
from claimbridge.money import MAX_AMOUNT, MoneyError, minor_unit, parse_amount, wire_text

names = st.text(min_size=1, max_size=12)
values = st.text(max_size=24)
params = st.dictionaries(names.filter(lambda n: n != "signature"), values, max_size=5)
SECRET = "wgt_property_0123456789"


@settings(max_examples=400, deadline=None)
@given(params, params)
@example({"a": "1&b=2"}, {"a": "1", "b": "2"})  # one parameter or two: the same text unless '&' and '=' are escaped
@example({"a=b": "c"}, {"a": "b=c"})
def test_two_different_parameter_sets_never_share_a_signed_message(one, other):
    if one != other:
        assert widget_message(one) != widget_message(other)


@settings(max_examples=200, deadline=None)
@given(params)
def test_the_message_does_not_depend_on_the_order_parameters_came_in(query):
    reordered = dict(reversed(list(query.items())))

    assert widget_message(reordered) == widget_message(query)
    assert widget_message({**query, "signature": "ignored"}) == widget_message(query)


@settings(max_examples=200, deadline=None)
@given(params, names, values)
def test_changing_or_adding_any_parameter_breaks_the_signature(query, name, value):
    signature = sign_widget(SECRET, query)
    changed = {**query, name: value}
    if name != "signature" and changed != query:
        assert sign_widget(SECRET, changed) != signature


def test_plain_values_sign_as_they_always_did():
    query = {"store_id": "acme", "customer_email": "ann@example.com", "timestamp": "1790000000"}

    assert widget_message(query) == "customer_email=ann@example.com&store_id=acme&timestamp=1790000000"


currencies = st.sampled_from(["USD", "EUR", "JPY", "KWD", "GBP"])


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(max_size=30), st.floats(allow_nan=True), st.integers(), st.decimals()), currencies)
def test_parsing_any_value_gives_an_exact_amount_or_a_money_error_never_anything_else(value, currency):
    try:
        amount = parse_amount(value, currency)
    except MoneyError:
        return
    assert amount.is_finite() and abs(amount) < MAX_AMOUNT
    assert amount == amount.quantize(Decimal(1).scaleb(-minor_unit(currency)))


@settings(max_examples=400, deadline=None)
@given(st.integers(min_value=-(10**12), max_value=10**12), currencies)
def test_an_amount_in_minor_units_round_trips_through_text_and_its_wire_form(minor, currency):
    amount = Decimal(minor).scaleb(-minor_unit(currency))
    if abs(amount) >= MAX_AMOUNT:
        return

    parsed = parse_amount(wire_text(amount, currency), currency)

    assert parsed == amount
    assert parse_amount(str(parsed), currency) == parsed
    assert wire_text(parsed, currency) == wire_text(amount, currency)
