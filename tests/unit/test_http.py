from datetime import UTC, datetime
from typing import Any

import pytest
import requests
from pydantic import BaseModel

from claimbridge.clients.http import (
    AuthError,
    BadRequestError,
    CallRecord,
    HttpClient,
    IntegrationConnectionError,
    IntegrationDisconnectedError,
    IntegrationResponseError,
    IntegrationTimeoutError,
    NotFoundError,
    RateLimitError,
    ServerError,
    parse_retry_after,
)


class FakeSession(requests.Session):
    """Answers from a script and remembers every call's keyword arguments (no network)."""

    def __init__(self, *answers: Any) -> None:
        super().__init__()
        self.answers = list(answers)
        self.calls: list[dict[str, Any]] = []

    def request(self, method, url, **kwargs):  # type: ignore[override]
        self.calls.append({"method": method, "url": url, **kwargs})
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def response(status: int, body: bytes = b"{}", headers: dict[str, str] | None = None) -> requests.Response:
    r = requests.Response()
    r.status_code = status
    r._content = body
    r.headers.update(headers or {})
    return r


class Thing(BaseModel):
    id: str


class Client(HttpClient):
    partner = "acme"

    def _auth_headers(self) -> dict[str, str]:
        return {"x-key": "k"}

    def thing(self) -> Thing:
        return self._parse(self._request("thing", "GET", "/things/1"), Thing)


def test_every_call_passes_the_timeout_the_auth_header_and_the_base_url():
    session = FakeSession(response(200, b'{"id": "1"}'))
    client = Client(base_url="http://acme.test/", timeout=(1.5, 4.0), session=session)

    assert client.thing() == Thing(id="1")

    (call,) = session.calls
    assert call["timeout"] == (1.5, 4.0)
    assert call["url"] == "http://acme.test/things/1"
    assert call["headers"]["x-key"] == "k"


@pytest.mark.parametrize(
    ("status", "error_type"),
    [
        (401, AuthError),
        (403, AuthError),
        (404, NotFoundError),
        (400, BadRequestError),
        (422, BadRequestError),
        (500, ServerError),
        (503, ServerError),
        (429, RateLimitError),
        (492, RateLimitError),
    ],
)
def test_status_codes_map_to_one_error_tree(status, error_type):
    client = Client(base_url="http://acme.test", session=FakeSession(response(status, b"nope", {"x-request-id": "r1"})))

    with pytest.raises(error_type) as error:
        client.thing()

    assert error.value.status == status
    assert error.value.request_id == "r1"
    assert error.value.partner == "acme"


def test_rate_limit_carries_retry_after_in_seconds():
    client = Client(base_url="http://acme.test", session=FakeSession(response(492, b"", {"Retry-After": "2"})))

    with pytest.raises(RateLimitError) as error:
        client.thing()

    assert error.value.retry_after == 2.0
    assert error.value.retryable


def test_retry_after_reads_seconds_and_http_dates():
    now = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)

    assert parse_retry_after("7", now=now) == 7.0
    assert parse_retry_after("Sun, 22 Nov 2026 12:00:30 GMT", now=now) == 30.0
    assert parse_retry_after("Sun, 22 Nov 2026 11:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("soon", now=now) is None
    assert parse_retry_after(None) is None


def test_a_read_timeout_may_have_been_sent_a_connect_timeout_was_not():
    read = Client(base_url="http://acme.test", session=FakeSession(requests.ReadTimeout()))
    connect = Client(base_url="http://acme.test", session=FakeSession(requests.ConnectTimeout()))

    with pytest.raises(IntegrationTimeoutError) as after_send:
        read.thing()
    with pytest.raises(IntegrationTimeoutError) as before_send:
        connect.thing()

    assert after_send.value.sent is True
    assert before_send.value.sent is False


def test_a_refused_connection_was_never_sent_and_a_reset_after_sending_may_have_been_applied():
    from http.client import RemoteDisconnected

    from urllib3.exceptions import MaxRetryError, NewConnectionError, ProtocolError

    refused = requests.ConnectionError(MaxRetryError(None, "/things/1", NewConnectionError(None, "refused")))  # type: ignore[arg-type]
    reset = requests.ConnectionError(ProtocolError("Connection aborted.", RemoteDisconnected("closed")))
    client = Client(base_url="http://acme.test", session=FakeSession(refused, reset, requests.ConnectionError()))

    with pytest.raises(IntegrationConnectionError) as before_send:
        client.thing()
    with pytest.raises(IntegrationDisconnectedError) as after_send:
        client.thing()
    with pytest.raises(IntegrationDisconnectedError) as unexplained:
        client.thing()

    assert before_send.value.may_have_applied is False
    assert after_send.value.may_have_applied is True
    assert unexplained.value.may_have_applied is True  # a cause we cannot read is treated as sent


def test_a_tls_failure_after_sending_may_have_been_applied_only_a_refused_certificate_was_never_sent():
    refused = requests.exceptions.SSLError("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
    broken = requests.exceptions.SSLError("[SSL: DECRYPTION_FAILED_OR_BAD_RECORD_MAC] bad record mac")
    cut = requests.exceptions.ChunkedEncodingError("Connection broken: IncompleteRead")
    client = Client(base_url="http://acme.test", session=FakeSession(refused, broken, cut))

    with pytest.raises(IntegrationConnectionError):
        client.thing()
    with pytest.raises(IntegrationDisconnectedError) as mid_answer:
        client.thing()
    with pytest.raises(IntegrationDisconnectedError) as cut_short:
        client.thing()

    assert mid_answer.value.may_have_applied and cut_short.value.may_have_applied


@pytest.mark.parametrize(
    ("error", "applied"),
    [
        (RateLimitError("x", retry_after=1, status=429), False),
        (BadRequestError("x", status=422), False),
        (AuthError("x", status=401), False),
        (ServerError("x", status=503), True),
        (IntegrationTimeoutError("x", sent=True), True),
        (IntegrationTimeoutError("x", sent=False), False),
        (IntegrationResponseError("x", status=200), True),
    ],
)
def test_each_failure_says_whether_the_partner_may_have_applied_the_call(error, applied):
    assert error.may_have_applied is applied


def test_a_200_without_the_id_we_need_is_a_failure_not_a_success():
    client = Client(base_url="http://acme.test", session=FakeSession(response(200, b'{"name": "no id"}')))

    with pytest.raises(IntegrationResponseError):
        client.thing()


def test_every_call_is_observed_with_its_outcome_and_latency():
    seen: list[CallRecord] = []
    session = FakeSession(response(200, b'{"id": "1"}'), response(500))
    client = Client(base_url="http://acme.test", session=session, observer=seen.append)

    client.thing()
    with pytest.raises(ServerError):
        client.thing()

    assert [(r.operation, r.status, r.outcome) for r in seen] == [("thing", 200, "ok"), ("thing", 500, "ServerError")]
    assert all(r.latency_ms >= 0 for r in seen)


def test_the_pacer_is_asked_before_every_call():
    class CountingPacer:
        count = 0

        def acquire(self) -> None:
            self.count += 1

    pacer = CountingPacer()
    client = Client(base_url="http://acme.test", session=FakeSession(response(200, b'{"id": "1"}')), pacer=pacer)

    client.thing()

    assert pacer.count == 1
