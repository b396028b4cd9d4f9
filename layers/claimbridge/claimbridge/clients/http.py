"""The HTTP base every partner client stands on: one session, explicit timeouts, one error tree, lenient models.

Retries do not live here: the job runner defers the SQS message (``claimbridge.jobs``). A client raises, the domain
decides whether the failure is permanent.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar, Protocol, TypeVar

import requests
from pydantic import BaseModel, ValidationError

DEFAULT_TIMEOUT = (3.05, 10.0)
REQUEST_ID_HEADERS = ("x-request-id", "x-amzn-requestid", "request-id")
# Richpanel documents 492 for "over quota" while its API answers 429: both mean "slow down".
RATE_LIMIT_STATUSES = frozenset({429, 492})

ModelT = TypeVar("ModelT", bound=BaseModel)


class IntegrationError(Exception):
    """Any failure talking to a partner.

    ``may_have_applied`` says what the failure tells about the partner's side: False only where the partner surely
    did nothing (the request never left, a 429, a refusal); True where it may have acted (a read timeout, a 5xx, a
    connection reset after the request was sent, a 2xx that lacks what the contract promises). Money and tickets
    are never sent again after a True without evidence (shared/DESIGN.md "Money is exactly once").
    """

    partner: str = ""
    retryable: bool = True
    may_have_applied: bool = True

    def __init__(self, message: str, *, partner: str = "") -> None:
        super().__init__(message)
        self.partner = partner


class IntegrationConnectionError(IntegrationError):
    """The request never reached the partner (DNS, refused, TLS): safe to send again."""

    may_have_applied = False


class IntegrationDisconnectedError(IntegrationError):
    """The connection broke after the request was sent (reset, closed without an answer): the partner may have acted."""


class IntegrationTimeoutError(IntegrationError):
    """No answer in time. ``sent`` is True when the request may have reached the partner (read timeout)."""

    def __init__(self, message: str, *, partner: str = "", sent: bool) -> None:
        super().__init__(message, partner=partner)
        self.sent = sent
        self.may_have_applied = sent


class IntegrationResponseError(IntegrationError):
    """A 2xx whose body is not what the contract promises (e.g. no id): a failure, never a success."""

    def __init__(self, message: str, *, partner: str = "", status: int = 0, body: str = "") -> None:
        super().__init__(message, partner=partner)
        self.status = status
        self.body = body


class IntegrationStatusError(IntegrationError):
    """The partner answered with an error status: a 4xx is a refusal (nothing was done), a 5xx is not."""

    retryable = False
    may_have_applied = False

    def __init__(
        self, message: str, *, partner: str = "", status: int, body: str = "", request_id: str | None = None
    ) -> None:
        super().__init__(message, partner=partner)
        self.status = status
        self.body = body
        self.request_id = request_id


class AuthError(IntegrationStatusError):
    """401/403: the stored credential is wrong or revoked. Permanent until an operator re-enters it."""


class NotFoundError(IntegrationStatusError):
    """404."""


class BadRequestError(IntegrationStatusError):
    """Another 4xx: the request itself is wrong; sending it again will not help."""


class RateLimitError(IntegrationStatusError):
    """429/492: come back after ``retry_after`` seconds."""

    retryable = True

    def __init__(self, message: str, *, retry_after: float | None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class ServerError(IntegrationStatusError):
    """5xx: the partner failed, perhaps after acting; try again later only what is safe to repeat."""

    retryable = True
    may_have_applied = True


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds: either delta-seconds or an HTTP date (RFC 9110 10.2.3). None when absent or bad."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _never_sent(error: requests.ConnectionError) -> bool:
    """A refused or unresolvable connection, or a certificate refused at the handshake: the request never left this
    machine. Any other TLS failure may come after the request was sent (a broken record while reading the answer),
    so it is not one of these."""
    from urllib3.exceptions import NewConnectionError

    if isinstance(error, requests.exceptions.SSLError):
        return "CERTIFICATE_VERIFY_FAILED" in str(error)
    cause = error.args[0] if error.args else None
    cause = getattr(cause, "reason", cause)  # urllib3's MaxRetryError carries the cause as ``reason``
    return isinstance(cause, NewConnectionError)


class Pacer(Protocol):
    """Spaces calls to one partner account so concurrent workers stay under its rate limit."""

    def acquire(self) -> None: ...


@dataclass(frozen=True)
class CallRecord:
    """What one partner call did, for the claim's timeline and the logs (never a body: PII)."""

    partner: str
    operation: str
    method: str
    path: str
    status: int | None
    outcome: str
    latency_ms: int

    def fields(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


CallObserver = Callable[[CallRecord], None]


class HttpClient:
    """Base of every partner client; subclasses set ``partner`` and add auth headers in ``_auth_headers``."""

    partner: ClassVar[str] = "partner"

    def __init__(
        self,
        *,
        base_url: str,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        session: requests.Session | None = None,
        pacer: Pacer | None = None,
        observer: CallObserver | None = None,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._timeout = timeout
        self._session = session or requests.Session()
        self._pacer = pacer
        self._observer = observer

    def _auth_headers(self) -> dict[str, str]:
        return {}

    def _request(
        self,
        operation: str,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        data: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> requests.Response:
        """Send one request with the timeout, pacing and error mapping every call gets; return a 2xx response."""
        if self._pacer is not None:
            self._pacer.acquire()
        sent_headers = {
            "accept": "application/json",
            "user-agent": "claimbridge/1.0",
            **self._auth_headers(),
            **dict(headers or {}),
        }
        started = time.monotonic()
        status: int | None = None
        outcome = "ok"
        try:
            response = self._session.request(
                method,
                self._base_url + path,
                params=params,
                json=json,
                data=data,
                headers=sent_headers,
                timeout=self._timeout,
            )
            status = response.status_code
            if status >= 400:
                error = self._status_error(response)
                outcome = type(error).__name__
                raise error
            return response
        except requests.ConnectTimeout as exc:
            outcome = "ConnectTimeout"
            raise IntegrationTimeoutError(f"{self.partner}: connect timeout", partner=self.partner, sent=False) from exc
        except requests.ReadTimeout as exc:
            outcome = "ReadTimeout"
            raise IntegrationTimeoutError(f"{self.partner}: read timeout", partner=self.partner, sent=True) from exc
        except requests.ConnectionError as exc:
            if _never_sent(exc):
                outcome = "ConnectionError"
                raise IntegrationConnectionError(f"{self.partner}: connection failed", partner=self.partner) from exc
            outcome = "Disconnected"
            raise IntegrationDisconnectedError(
                f"{self.partner}: connection broke after the request was sent", partner=self.partner
            ) from exc
        except requests.RequestException as exc:  # a body cut short or undecodable, too many redirects
            outcome = type(exc).__name__
            raise IntegrationDisconnectedError(
                f"{self.partner}: the answer could not be read ({type(exc).__name__})", partner=self.partner
            ) from exc
        finally:
            if self._observer is not None:
                latency_ms = int((time.monotonic() - started) * 1000)
                self._observer(CallRecord(self.partner, operation, method, path, status, outcome, latency_ms))

    def _status_error(self, response: requests.Response) -> IntegrationStatusError:
        status = response.status_code
        body = response.text[:2000]
        request_id = next((response.headers[h] for h in REQUEST_ID_HEADERS if h in response.headers), None)
        common: dict[str, Any] = {"partner": self.partner, "status": status, "body": body, "request_id": request_id}
        message = f"{self.partner}: HTTP {status}"
        if status in RATE_LIMIT_STATUSES:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            return RateLimitError(message, retry_after=retry_after, **common)
        if status in (401, 403):
            return AuthError(message, **common)
        if status == 404:
            return NotFoundError(message, **common)
        if status >= 500:
            return ServerError(message, **common)
        return BadRequestError(message, **common)

    def _parse(self, response: requests.Response, model: type[ModelT]) -> ModelT:
        """Validate the body into ``model``; a body that does not fit the contract is an error, not a success."""
        try:
            return model.model_validate(response.json())
        except (ValueError, ValidationError) as exc:
            raise IntegrationResponseError(
                f"{self.partner}: unexpected response body",
                partner=self.partner,
                status=response.status_code,
                body=response.text[:2000],
            ) from exc
