"""The sample events in events/ are real: each one, given to its function, is handled as documented."""

import json
from pathlib import Path

EVENTS = Path(__file__).resolve().parents[2] / "events"


def load(name: str) -> dict:
    return json.loads((EVENTS / name).read_text())


def test_the_admin_sample_events_run_in_order_against_the_admin_function(stack, sandbox):
    admin = stack.functions["AdminFunction"]
    statuses = [
        admin.invoke(load(name))["statusCode"]
        for name in (
            "admin_put_store.json",
            "admin_get_store.json",
            "admin_put_richpanel.json",
            "admin_get_richpanel_teams.json",
        )
    ]

    assert statuses[0] in (200, 201)
    assert statuses[1:] == [200, statuses[2], 200]
    assert statuses[2] in (200, 201)
