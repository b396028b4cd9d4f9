"""EventBridge schedules, locally: each Schedule event of the template fired on its rate and on demand."""

from __future__ import annotations

import re
import threading
import time
import traceback
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from local.functions import LocalFunction
from local.template import resources_of

_UNITS = {"minute": 60, "minutes": 60, "hour": 3600, "hours": 3600, "day": 86400, "days": 86400}


@dataclass(frozen=True)
class Schedule:
    name: str  # "<Function>.<Event>"
    function: str
    every_s: float
    input: dict[str, Any] | None


def rate_seconds(expression: str) -> float:
    found = re.fullmatch(r"rate\((\d+)\s+(\w+)\)", expression.strip())
    if not found or found.group(2) not in _UNITS:
        raise ValueError(f"only rate(...) schedules run locally, not {expression!r}")
    return int(found.group(1)) * _UNITS[found.group(2)]


def schedules(template: dict[str, Any]) -> list[Schedule]:
    import json

    found = []
    for function_id, spec in resources_of(template, "AWS::Serverless::Function").items():
        for event_id, event in (spec["Properties"].get("Events") or {}).items():
            if event["Type"] == "Schedule":
                props = event["Properties"]
                found.append(
                    Schedule(
                        name=f"{function_id}.{event_id}",
                        function=function_id,
                        every_s=rate_seconds(props["Schedule"]),
                        input=json.loads(props["Input"]) if props.get("Input") else None,
                    )
                )
    return found


def scheduled_event(schedule: Schedule) -> dict[str, Any]:
    if schedule.input is not None:
        return dict(schedule.input)
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": "us-east-1",
        "resources": [f"arn:aws:events:us-east-1:123456789012:rule/{schedule.name}"],
        "detail": {},
    }


class Scheduler:
    def __init__(self, entries: list[Schedule], functions: dict[str, LocalFunction], stop: threading.Event) -> None:
        self.entries = {entry.name: entry for entry in entries}
        self._functions = functions
        self._stop = stop

    def fire(self, name: str) -> Any:
        entry = self.entries[name]
        return self._functions[entry.function].invoke(scheduled_event(entry))

    def start(self) -> None:
        for entry in self.entries.values():
            threading.Thread(target=self._loop, args=(entry,), name=f"schedule-{entry.name}", daemon=True).start()

    def _loop(self, entry: Schedule) -> None:
        while not self._stop.wait(entry.every_s):
            try:
                self.fire(entry.name)
            except Exception:  # noqa: BLE001 - a failed run is logged; the next one still fires
                traceback.print_exc()
                time.sleep(0)
