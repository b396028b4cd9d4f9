"""The local stack started as `make run` starts it (``python -m local``), driven over HTTP."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from local.emulators import free_port

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class RunningStack:
    process: subprocess.Popen[str]
    url: str
    admin_key: str
    webhook_secret: str
    store_id: str
    banner: str
    output: list[str]
    data_dir: Path

    def admin(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {"x-api-key": self.admin_key, **kwargs.pop("headers", {})}
        return requests.request(method, self.url + path, headers=headers, timeout=30, **kwargs)

    def endpoint(self, name: str) -> str:
        found = re.search(rf"{name}\s+(http://\S+)", self.banner)
        assert found, name
        return found.group(1)


def start_stack(extra_env: dict[str, str] | None = None, data_dir: Path | None = None) -> RunningStack:
    """``make run``'s stack on a free port, its data in ``data_dir`` (a fresh folder when not given)."""
    port = free_port()
    data = data_dir or Path(tempfile.mkdtemp(prefix="claimbridge-data-"))
    env = {
        **os.environ,
        "PORT": str(port),
        "PYTHONUNBUFFERED": "1",
        "CLAIMBRIDGE_LOCAL_DATA": str(data),
        **(extra_env or {}),
    }
    env.pop("CLAIMBRIDGE_ADMIN_API_KEY", None)
    process = subprocess.Popen(  # the same entry point as `make run`
        [sys.executable, "-m", "local"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            raise RuntimeError("make run's stack exited early:\n" + "".join(lines))
        lines.append(line)
        if line.startswith("Ctrl-C stops everything"):
            break
    banner = "".join(lines)
    # Keep draining its output so a chatty log never blocks the stack; kept for diagnosis.
    output: list[str] = []
    threading.Thread(target=lambda: output.extend(process.stdout), daemon=True).start()  # type: ignore[arg-type]

    def value(label: str) -> str:
        found = re.search(rf"^\s+{label}\s+(\S+)", banner, re.MULTILINE)
        assert found, f"{label} missing from the banner:\n{banner}"
        return found.group(1)

    return RunningStack(
        process=process,
        url=value("API"),
        admin_key=value("admin API key"),
        webhook_secret=value("webhook secret"),
        store_id=value("demo store"),
        banner=banner,
        output=output,
        data_dir=data,
    )


def stop_stack(stack: RunningStack) -> int:
    stack.process.send_signal(signal.SIGINT)
    try:
        return stack.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        stack.process.send_signal(signal.SIGUSR1)  # faulthandler: every thread's stack
        time.sleep(1)
        stack.process.kill()
        tail = "".join(line for line in stack.output if not line.startswith('{"level"'))[-6000:]
        raise AssertionError("the stack did not stop within 30 s of Ctrl-C:\n" + tail) from None


@pytest.fixture(scope="package")
def running() -> Iterator[RunningStack]:
    stack = start_stack()
    yield stack
    if stack.process.poll() is None:
        stop_stack(stack)
