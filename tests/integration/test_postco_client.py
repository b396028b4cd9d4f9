"""The PostCo client against the sandbox's PostCo over HTTP: cursor paging newest first, one return, its errors in
PostCo's words, its rate limit and a key it refuses."""

from __future__ import annotations

import pytest

from claimbridge.clients.http import AuthError, BadRequestError, NotFoundError, RateLimitError, ServerError
from claimbridge.clients.postco import PostcoClient

KEY = "sk_test_0123456789abcdef"


def client(stack, key: str = KEY) -> PostcoClient:
    return PostcoClient(api_key=key, base_url=stack.sandbox.urls["postco"], timeout=(2.0, 5.0))


def seed(sandbox, count: int, **fields) -> None:
    returns = {
        str(1000 + i): {
            "status": "resolved" if i % 5 == 0 else "open",
            "refund_method": "store_credit" if i % 10 == 0 else "refund",
            "refund_amount": "12.50",
            "currency": "USD",
            "cust_email": f"c{i}@example.com",
            "order_id": f"o{i}",
            "order_name": f"#{i}",
            "submitted_at": f"2026-11-{1 + i // 100:02d}T{(i // 60) % 24:02d}:{i % 60:02d}:00Z",
            **fields,
        }
        for i in range(count)
    }
    sandbox["postco"].seed({"returns": returns})


def test_pages_walk_every_return_newest_first_with_the_cursor(stack, sandbox):
    seed(sandbox, 250)
    postco = client(stack)

    pages, cursor = [], None
    while True:
        page = postco.list_returns(cursor=cursor)
        pages.append(page)
        if not page.has_more:
            break
        cursor = page.next_cursor
    returns = [r for page in pages for r in page.data]

    assert [len(p.data) for p in pages] == [100, 100, 50]
    assert pages[-1].next_cursor is None
    assert len({r.id for r in returns}) == 250
    assert [r.submitted_at for r in returns] == sorted((r.submitted_at for r in returns), reverse=True)
    assert sum(r.qualifies for r in returns) == 25
    calls = sandbox["postco"].calls("/return_orders")
    assert all(c["headers"].get("authorization") == f"Bearer {KEY}" for c in calls)


def test_one_return_is_read_by_id_and_an_unknown_one_is_not_found_in_postcos_words(stack, sandbox):
    seed(sandbox, 3)
    postco = client(stack)

    one = postco.get_return(1002)
    with pytest.raises(NotFoundError, match="resource_missing: No return order 99"):
        postco.get_return(99)

    assert (one.id, one.order_name, one.refund_amount) == (1002, "#2", "12.50")


def test_a_limit_postco_refuses_is_a_bad_request_naming_it(stack, sandbox):
    with pytest.raises(BadRequestError, match="parameter_invalid: limit must be between 1 and 100"):
        client(stack).list_returns(limit=101)


def test_a_revoked_key_is_an_auth_error(stack, sandbox):
    with pytest.raises(AuthError, match="invalid_api_key"):
        client(stack, "sk_revoked_0123456789").check_key()


def test_a_429_carries_retry_after_and_a_5xx_mid_paging_is_a_server_error(stack, sandbox):
    seed(sandbox, 150)
    postco = client(stack)
    first = postco.list_returns()
    sandbox["postco"].faults(script=[{"status": 429, "headers": {"Retry-After": "7"}}, {"status": 503}])

    with pytest.raises(RateLimitError) as limited:
        postco.list_returns(cursor=first.next_cursor)
    with pytest.raises(ServerError):
        postco.list_returns(cursor=first.next_cursor)
    second = postco.list_returns(cursor=first.next_cursor)

    assert limited.value.retry_after == 7
    assert len(second.data) == 50 and not second.has_more


def test_the_sandbox_holds_postco_to_100_requests_a_minute_per_key(stack, sandbox):
    postco = client(stack, "sk_busy_0123456789")
    for _ in range(100):
        postco.check_key()

    with pytest.raises(RateLimitError, match="rate_limited") as limited:
        postco.check_key()

    assert limited.value.retry_after is not None and limited.value.retry_after >= 1
    client(stack, "sk_other_0123456789").check_key()  # another key has its own minute
