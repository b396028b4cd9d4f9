"""API Gateway, locally: the template's routes, HTTP requests turned into REST proxy events, answers turned back."""

from __future__ import annotations

import base64
import hmac
import json
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from local.functions import LocalFunction
from local.template import Route

MAX_PAYLOAD = 10 * 1024 * 1024  # API Gateway's own limit; the handlers enforce their tighter ones


@dataclass
class ApiAnswer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def _answer(status: int, message: str) -> ApiAnswer:
    return ApiAnswer(status, {"Content-Type": "application/json"}, json.dumps({"message": message}).encode())


class LocalApi:
    """Routes requests to the functions as API Gateway's REST proxy integration would."""

    def __init__(
        self,
        routes: list[Route],
        functions: Mapping[str, LocalFunction],
        *,
        admin_api_key: str,
        stage: str = "local",
        control: Callable[[str, str], ApiAnswer] | None = None,
    ) -> None:
        self._routes = routes
        self._functions = functions
        self._admin_api_key = admin_api_key
        self._stage = stage
        self._control = control

    def invoke(
        self,
        method: str,
        target: str,
        headers: Mapping[str, str] | None = None,
        body: bytes | str | None = None,
        *,
        source_ip: str = "127.0.0.1",
    ) -> ApiAnswer:
        headers = dict(headers or {})
        raw = body.encode() if isinstance(body, str) else (body or b"")
        if len(raw) > MAX_PAYLOAD:
            return _answer(413, "Request Too Long")
        split = urlsplit(target)
        path = split.path
        if path.startswith("/__local/") and self._control is not None:
            # The local stack's own controls (not part of the deployed API), behind the admin key.
            lower_headers = {k.lower(): v for k, v in headers.items()}
            if not hmac.compare_digest(lower_headers.get("x-api-key", "").encode(), self._admin_api_key.encode()):
                return _answer(401, "Unauthorized: missing or wrong x-api-key")
            return self._control(method.upper(), path.removeprefix("/__local/"))
        route, params = self._match(method.upper(), path)
        if route is None:
            return _answer(404 if params is None else 405, "Not Found" if params is None else "Method Not Allowed")
        lower = {k.lower(): v for k, v in headers.items()}
        if route.api_key_required and not hmac.compare_digest(
            lower.get("x-api-key", "").encode(), self._admin_api_key.encode()
        ):
            # Deployed, API Gateway answers 403 "Forbidden" for a missing or wrong usage-plan key.
            return _answer(401, "Unauthorized: missing or wrong x-api-key")
        query = parse_qsl(split.query, keep_blank_values=True)
        multi_query: dict[str, list[str]] = {}
        for name, value in query:
            multi_query.setdefault(name, []).append(value)
        try:
            text_body: str | None = raw.decode() if raw else None
            is_base64 = False
        except UnicodeDecodeError:
            text_body, is_base64 = base64.b64encode(raw).decode(), True
        event = {
            "resource": route.path,
            "path": path,
            "httpMethod": method.upper(),
            "headers": headers or None,
            "multiValueHeaders": {k: [v] for k, v in headers.items()} or None,
            "queryStringParameters": {k: v[-1] for k, v in multi_query.items()} or None,
            "multiValueQueryStringParameters": multi_query or None,
            "pathParameters": params or None,
            "stageVariables": None,
            "requestContext": {
                "accountId": "123456789012",
                "apiId": "local",
                "resourcePath": route.path,
                "httpMethod": method.upper(),
                "path": path,  # the local API has no stage prefix in its URLs
                "stage": self._stage,
                "requestId": str(uuid.uuid4()),
                "requestTimeEpoch": int(time.time() * 1000),
                "identity": {
                    "sourceIp": source_ip,
                    "apiKey": lower.get("x-api-key") if route.api_key_required else None,
                },
            },
            "body": text_body,
            "isBase64Encoded": is_base64,
        }
        try:
            result = self._functions[route.function].invoke(event)
        except Exception:  # noqa: BLE001 - API Gateway's answer to a crashed integration
            import traceback

            traceback.print_exc()
            return _answer(502, "Internal server error")
        return _to_answer(result)

    def _match(self, method: str, path: str) -> tuple[Route | None, dict[str, str] | None]:
        path_matched = False
        for route in self._routes:
            found = route.pattern.match(path)
            if found is None:
                continue
            path_matched = True
            if route.method in (method, "ANY"):
                return route, found.groupdict()
        return None, ({} if path_matched else None)


def _to_answer(result: Any) -> ApiAnswer:
    if not isinstance(result, dict) or "statusCode" not in result:
        return _answer(502, "Internal server error: malformed Lambda proxy response")
    headers = {k: str(v) for k, v in (result.get("headers") or {}).items()}
    for name, values in (result.get("multiValueHeaders") or {}).items():
        headers[name] = ", ".join(str(v) for v in values)
    body = result.get("body") or ""
    raw = base64.b64decode(body) if result.get("isBase64Encoded") else str(body).encode()
    return ApiAnswer(int(result["statusCode"]), headers, raw)


def serve(api: LocalApi, host: str, port: int) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            answer = api.invoke(
                self.command, self.path, dict(self.headers.items()), body, source_ip=self.client_address[0]
            )
            self.send_response(answer.status)
            for name, value in answer.headers.items():
                if name.lower() not in ("content-length", "connection"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            if self.command != "HEAD":  # a HEAD answer has headers only
                self.wfile.write(answer.body)

        # HEAD and OPTIONS are routed like any method: a route without them answers 405, as API Gateway refuses them.
        def __getattr__(self, name: str) -> Any:
            # Every method is routed (http.server would answer an unknown one 501): a route without it answers 405.
            if name.startswith("do_"):
                return self._handle
            raise AttributeError(name)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
            pass

    class Server(ThreadingHTTPServer):
        request_queue_size = 256  # a burst of connections waits to be accepted instead of being reset

    server = Server((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="local-api", daemon=True).start()
    return server
