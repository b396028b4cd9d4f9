"""Shared fixtures: the local stack's engines (DynamoDB Local, moto server, the partner sandbox), started once."""

from __future__ import annotations

import json
import secrets
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest


class SandboxControl:
    """The sandbox's control surface over HTTP (``/__sandbox/...``) for one partner."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base_url + path, data=data, method=method)
        request.add_header("content-type", "application/json")
        with urllib.request.urlopen(request, timeout=10) as answer:
            raw = answer.read()
        return json.loads(raw) if raw else None

    def calls(self, path: str = "", method: str | None = None) -> list[dict[str, Any]]:
        query = f"?path={path}" + (f"&method={method}" if method else "")
        return list(self._call("GET", "/__sandbox/calls" + query)["calls"])

    def faults(self, **knobs: Any) -> None:
        self._call("PUT", "/__sandbox/faults", knobs)

    def seed(self, state: dict[str, Any]) -> None:
        self._call("PUT", "/__sandbox/state", state)

    def state(self) -> dict[str, Any]:
        return dict(self._call("GET", "/__sandbox/state"))

    def reset(self) -> None:
        self._call("POST", "/__sandbox/reset")


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """DynamoDB Local + moto server + the sandbox, with the template's resources; handlers invoked in this process
    (inline), so a test can fault-inject and drive them step by step. The end-to-end tests run them as `make run`
    does, each function in its own worker processes."""
    from local.stack import LocalStack

    local = LocalStack(
        port=0,
        log_dir=tmp_path_factory.mktemp("stack-logs"),
        inline=True,
        serve_http=False,
        run_pollers=False,
        run_schedules=False,
        admin_api_key="test-admin-key-" + secrets.token_hex(8),
    )
    local.start()
    yield local
    local.stop()


@pytest.fixture
def sandbox(stack: Any) -> dict[str, SandboxControl]:
    controls = {name: SandboxControl(url) for name, url in stack.sandbox.urls.items()}
    for control in controls.values():
        control.reset()
    return controls


@pytest.fixture
def store_id() -> str:
    return "store-" + secrets.token_hex(6)
