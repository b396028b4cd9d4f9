"""What every sandbox partner shares: routing, the call record, rate limiting and fault injection."""

from __future__ import annotations

import json
import random
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlsplit


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def form(self) -> dict[str, str]:
        return dict(parse_qsl(self.body.decode(), keep_blank_values=True))

    def arg(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else None


@dataclass
class Reply:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)

    def encoded(self) -> bytes:
        if self.body is None:
            return b""
        return self.body if isinstance(self.body, bytes) else json.dumps(self.body).encode()


Route = tuple[str, re.Pattern[str], Callable[..., Reply]]


class RateLimiter:
    """A sliding window per account: at most ``limit`` calls in ``window_s`` seconds."""

    def __init__(self, limit: int, window_s: float) -> None:
        self.limit = limit
        self.window_s = window_s
        self._calls: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def check(self, account: str) -> float | None:
        """None when the call is allowed (and counted), else the seconds until one would be."""
        now = time.monotonic()
        with self._lock:
            calls = self._calls.setdefault(account, deque())
            while calls and now - calls[0] >= self.window_s:
                calls.popleft()
            if len(calls) >= self.limit:
                return self.window_s - (now - calls[0])
            calls.append(now)
            return None


class Partner:
    """A partner's fake: subclasses declare routes with ``route`` and an ``account`` for rate limiting."""

    name = "partner"
    limiter: RateLimiter | None = None
    rate_limit_status = 429

    def __init__(self) -> None:
        self.routes: list[Route] = []
        self.calls: list[dict[str, Any]] = []
        self.faults: dict[str, Any] = {}
        self.state: dict[str, Any] = {}
        self.lock = threading.RLock()
        self._ids = 1000
        self.setup()

    # -- for subclasses ------------------------------------------------------------------------------------------

    def setup(self) -> None: ...

    def account(self, request: Request) -> str | None:
        """The credential the rate limit counts against; None for an unauthenticated call."""
        return None

    def authenticate(self, request: Request) -> Reply | None:
        """A refusal when the request's credential is wrong, else None."""
        return None

    def rate_limited_body(self) -> Any:
        """The body of a rate-limited answer, as the partner words it."""
        return {"error": "rate limit exceeded"}

    def route(self, method: str, pattern: str, handler: Callable[..., Reply]) -> None:
        self.routes.append((method, re.compile("^" + pattern + "$"), handler))

    def next_id(self) -> int:
        with self.lock:
            self._ids += 1
            return self._ids

    # -- dispatch ------------------------------------------------------------------------------------------------

    def handle(self, request: Request) -> Reply | None:
        """None means: hang up without answering (an injected timeout)."""
        if request.path.startswith("/__sandbox/"):
            return self._control(request)
        record = {
            "at": time.time(),
            "method": request.method,
            "path": request.path,
            "query": {k: v[-1] for k, v in request.query.items()},
            "headers": request.headers,
            "body": request.body.decode(errors="replace"),
        }
        with self.lock:
            self.calls.append(record)
            scripted = self.faults.get("script") or []
            step = scripted.pop(0) if scripted else None
            # {"pass": true} lets one call through as usual: a script can strike the second call, not the first.
            reply = Reply(**step) if step and not step.get("pass") else None
        faults = self.faults
        if faults.get("latency_ms") and request.path.startswith(faults.get("latency_path", "")):
            time.sleep(float(faults["latency_ms"]) / 1000)
        if reply is None and _fault(faults, "timeout", request):
            time.sleep(float(faults.get("hang_s", 30)))
            record["status"] = "timeout"
            return None
        if reply is None and _fault(faults, "error", request):
            status = int(faults.get("error_status", 500))
            limited = {"Retry-After": str(faults.get("retry_after", 1))} if status in (429, 492) else {}
            reply = Reply(status, {"error": "injected fault"}, limited)
        if reply is None:
            reply = self.authenticate(request)
        if reply is None and self.limiter is not None and not faults.get("no_rate_limit"):
            account = self.account(request)
            if account is not None:
                wait = self.limiter.check(account)
                if wait is not None:
                    reply = Reply(
                        int(faults.get("rate_limit_status", self.rate_limit_status)),
                        self.rate_limited_body(),
                        {"Retry-After": str(max(1, int(wait + 0.999)))},
                    )
        if reply is None:
            reply = self._dispatch(request)
            if reply.status < 300 and _fault(faults, "apply_timeout", request):
                # The partner acted, then its answer never came: the caller cannot know it acted.
                record["status"] = "applied, then timed out"
                record["applied_status"] = reply.status
                time.sleep(float(faults.get("hang_s", 30)))
                return None
        record["status"] = reply.status
        return reply

    def _dispatch(self, request: Request) -> Reply:
        path_known = False
        for method, pattern, handler in self.routes:
            found = pattern.match(request.path)
            if found:
                path_known = True
                if method == request.method:
                    return handler(request, **found.groupdict())
        return Reply(405 if path_known else 404, {"error": "not found"})

    def _control(self, request: Request) -> Reply:
        what = request.path.removeprefix("/__sandbox/")
        with self.lock:
            if what == "calls" and request.method == "GET":
                prefix, method = request.arg("path") or "", request.arg("method")
                calls = [
                    c for c in self.calls if c["path"].startswith(prefix) and (method is None or c["method"] == method)
                ]
                return Reply(200, {"calls": calls})
            if what == "calls" and request.method == "DELETE":
                self.calls.clear()
                return Reply(204)
            if what == "faults" and request.method == "PUT":
                self.faults = request.json() or {}
                return Reply(200, self.faults)
            if what == "faults" and request.method == "GET":
                return Reply(200, self.faults)
            if what == "state" and request.method == "PUT":
                _merge(self.state, request.json() or {})
                return Reply(200, self.state)
            if what == "state" and request.method == "GET":
                return Reply(200, self.state)
            if what == "reset" and request.method == "POST":
                self.calls.clear()
                self.faults = {}
                self.state = {}
                self.setup()
                if self.limiter is not None:
                    self.limiter = RateLimiter(self.limiter.limit, self.limiter.window_s)
                return Reply(204)
        return Reply(404, {"error": f"unknown control {request.method} {request.path}"})


def _fault(faults: dict[str, Any], name: str, request: Request) -> bool:
    """Whether the fault ``<name>_rate`` strikes this request (only under ``<name>_path`` and of ``<name>_method``
    when those are set)."""
    rate = float(faults.get(f"{name}_rate") or 0)
    if rate <= 0 or not request.path.startswith(faults.get(f"{name}_path", "")):
        return False
    if faults.get(f"{name}_method") not in (None, request.method):
        return False
    return random.random() < rate


def _merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = value


def serve(partner: Partner, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _handle(self) -> None:
            split = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            request = Request(
                method=self.command,
                path=split.path,
                query=parse_qs(split.query, keep_blank_values=True),
                headers={k.lower(): v for k, v in self.headers.items()},
                body=self.rfile.read(length) if length else b"",
            )
            reply = partner.handle(request)
            if reply is None:
                self.close_connection = True
                return
            payload = reply.encoded()
            self.send_response(reply.status)
            if payload:
                self.send_header("Content-Type", "application/json")
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name=f"sandbox-{partner.name}", daemon=True).start()
    return server
