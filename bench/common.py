"""What the benchmarks share: the local stack started quietly, a timer, medians."""

from __future__ import annotations

import contextlib
import logging
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from local.stack import LocalStack

WEBHOOK_SECRET = "whsec_bench_0123456789abcdef"


@contextlib.contextmanager
def quiet_stack(log_level: str = "WARNING", **options: Any) -> Iterator[LocalStack]:
    """The stack, its functions' logs at ``log_level`` (worker processes take it from the environment at start)."""
    os.environ["POWERTOOLS_LOG_LEVEL"] = log_level
    logging.getLogger().setLevel(logging.WARNING)
    stack = LocalStack(port=0, log_dir=Path(tempfile.mkdtemp(prefix="bench-")), run_schedules=False, **options)
    stack.start()
    os.environ["POWERTOOLS_LOG_LEVEL"] = log_level
    try:
        yield stack
    finally:
        stack.stop()


def make_store(stack: LocalStack, store_id: str, *, richpanel_key: str | None = None) -> None:
    stack.admin(
        "PUT",
        f"/internal/stores/{store_id}",
        {"name": "Bench", "shop_domain": f"{store_id}.myshopify.com", "webhook_secrets": [WEBHOOK_SECRET]},
    )
    if richpanel_key:
        stack.admin("PUT", f"/internal/integrations/richpanel/stores/{store_id}", {"api_key": richpanel_key})


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def timed(action: Callable[[], Any], runs: int) -> list[float]:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        samples.append(time.perf_counter() - started)
    return samples


def report(name: str, value: float, floor: float, goal: str, unit: str = "ms") -> None:
    ratio = value / floor if floor else float("inf")
    print(f"  {name:<58} {value:9.2f} {unit}  floor {floor:9.2f} {unit}  ratio {ratio:5.2f}  (goal {goal})", flush=True)
