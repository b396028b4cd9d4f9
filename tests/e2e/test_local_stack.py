"""`make run`'s stack over HTTP: the banner, the demo store, the admin API, and a clean stop."""

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import requests

from local.emulators import free_port
from tests.e2e.conftest import ROOT, start_stack, stop_stack


def test_the_banner_prints_the_url_the_admin_key_the_demo_secret_and_a_ready_curl(running):
    assert running.url.startswith("http://127.0.0.1:")
    assert len(running.admin_key) >= 20
    assert running.webhook_secret.startswith("whsec_")
    assert f"curl -s -H 'x-api-key: {running.admin_key}' {running.url}/internal/stores/demo-store" in running.banner


def test_the_demo_store_is_served_with_working_sandbox_settings(running):
    store = running.admin("GET", f"/internal/stores/{running.store_id}")
    teams = running.admin("GET", f"/internal/integrations/richpanel/stores/{running.store_id}/teams")

    assert store.status_code == 200
    assert store.json()["shop_domain"] == "demo-store.myshopify.com"
    assert running.webhook_secret not in store.text
    assert teams.status_code == 200
    assert teams.json()["teams"]


def test_make_run_shows_the_sweeper_and_health_schedules_and_fires_each_on_demand(running):
    listing = running.admin("GET", "/__local/schedules").json()
    sweep = running.admin("POST", "/__local/schedules/SyncFunction.Sweep").json()["result"]
    health = running.admin("POST", "/__local/schedules/SyncFunction.IntegrationHealth").json()["result"]

    assert listing["SyncFunction.Sweep"] == {"every_s": 300}
    assert listing["SyncFunction.IntegrationHealth"] == {"every_s": 3600}
    assert sweep["queries"] == 4 and "stuck" in sweep
    assert health["checked"] >= 4 and health["invalid"] == 0  # the demo store's integrations, all valid


def test_the_operator_views_answer_over_http(running):
    held = running.admin("GET", f"/internal/stores/{running.store_id}/ledger?state=HELD")
    queues = running.admin("GET", "/internal/queues")

    assert held.status_code == 200 and held.json() == {"rows": [], "next_cursor": None}
    assert sorted(q["name"] for q in queues.json()["queues"]) == ["credit", "order_protection", "postco", "richpanel"]


def test_the_admin_api_over_http_saves_reads_and_refuses(running):
    path = "/internal/stores/e2e-store"
    body = {"name": "E2E", "shop_domain": "e2e.myshopify.com", "webhook_secrets": ["e2e-secret-0123456789"]}

    assert requests.put(running.url + path, json=body, timeout=10).status_code == 401
    assert running.admin("PUT", path, json=body).status_code == 201
    assert running.admin("GET", path).json()["name"] == "E2E"
    bad = running.admin("PUT", path, json={**body, "shop_domain": "e2e.example.com"})
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "shop_domain"
    assert running.admin("GET", path).json()["shop_domain"] == "e2e.myshopify.com"
    integration = "/internal/integrations/richpanel/stores/e2e-store"
    assert running.admin("PUT", integration, json={"api_key": "rp_e2e_0123456789"}).status_code == 201
    assert running.admin("GET", integration).json()["api_key"] == "rp_****6789"


def _answers(url: str) -> bool:
    host, port = url.removeprefix("http://").split(":")
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, int(port))) == 0


def test_ctrl_c_stops_everything_the_stack_started():
    stack = start_stack()
    endpoints = [stack.url, stack.endpoint("DynamoDB Local"), stack.endpoint(r"moto \(SQS/KMS/EB\)")]
    children = subprocess.run(
        ["pgrep", "-P", str(stack.process.pid)], capture_output=True, text=True, check=False
    ).stdout.split()
    assert all(_answers(url) for url in endpoints)
    assert len(children) >= 3  # DynamoDB Local, moto, the sandbox

    assert stop_stack(stack) == 0

    assert not any(_answers(url) for url in endpoints)
    still_running = subprocess.run(["ps", "-o", "pid=", "-p", ",".join(children)], capture_output=True, text=True)
    assert still_running.stdout.strip() == ""


def test_the_stack_starts_with_every_partner_pointed_at_a_server_that_refuses_the_demo_keys():
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Refusing(BaseHTTPRequestHandler):
        def _refuse(self) -> None:
            self.send_response(401)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_POST = do_PUT = do_DELETE = _refuse

        def log_message(self, *_: object) -> None:
            pass

    refusing = ThreadingHTTPServer(("127.0.0.1", 0), Refusing)
    threading.Thread(target=refusing.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{refusing.server_address[1]}"
    variables = ("RICHPANEL", "RISE", "RIVO", "POSTCO", "ORDER_PROTECTION")
    stack = start_stack({f"{name}_API_BASE_URL": url for name in variables})
    try:
        store = stack.admin("GET", f"/internal/stores/{stack.store_id}")
        richpanel = stack.admin("GET", f"/internal/integrations/richpanel/stores/{stack.store_id}")

        assert stack.process.poll() is None and store.status_code == 200
        assert f"skipped: richpanel (pointed at {url}, not the sandbox)" in stack.banner
        assert richpanel.status_code == 404  # not configured with a made-up key against a real-looking partner
    finally:
        stop_stack(stack)
        refusing.shutdown()


def test_head_options_and_a_burst_of_connections_are_answered_as_api_gateway_would(running):
    from concurrent.futures import ThreadPoolExecutor

    head = requests.head(f"{running.url}/internal/stores/{running.store_id}", timeout=10)
    options = requests.options(f"{running.url}/stores/{running.store_id}/webhooks/claims", timeout=10)
    with ThreadPoolExecutor(max_workers=40) as pool:
        burst = list(
            pool.map(
                lambda _: requests.get(f"{running.url}/widget/stores/{running.store_id}", timeout=30).status_code,
                range(40),
            )
        )

    assert (head.status_code, head.content) == (405, b"")
    assert options.status_code == 405
    assert burst == [401] * 40  # every connection answered (unsigned), none reset


def test_kept_data_survives_a_restart_and_sealed_secrets_still_open(tmp_path):
    first = start_stack(data_dir=tmp_path)
    try:
        renamed = first.admin(
            "PUT",
            f"/internal/stores/{first.store_id}",
            json={
                "name": "Renamed before the restart",
                "shop_domain": "demo-store.myshopify.com",
                "webhook_secrets": [first.webhook_secret],
            },
        )
        assert renamed.status_code == 200, renamed.text
    finally:
        assert stop_stack(first) == 0

    second = start_stack(data_dir=tmp_path)
    try:
        store = second.admin("GET", f"/internal/stores/{second.store_id}")
        # the Richpanel key was sealed with KMS in the first run: listing teams opens it against the sandbox
        teams = second.admin("GET", f"/internal/integrations/richpanel/stores/{second.store_id}/teams")

        assert (second.admin_key, second.webhook_secret) == (first.admin_key, first.webhook_secret)
        assert store.status_code == 200 and store.json()["name"] == "Renamed before the restart"
        assert teams.status_code == 200 and teams.json()["teams"]
        assert "kept from an earlier run" in second.banner
    finally:
        stop_stack(second)


def test_each_function_runs_in_its_own_processes_one_invocation_at_a_time(running):
    from concurrent.futures import ThreadPoolExecutor

    def rename(index: int) -> tuple[int, str]:
        store = f"e2e-apart-{index}"
        put = running.admin(
            "PUT",
            f"/internal/stores/{store}",
            json={
                "name": f"Store {index}",
                "shop_domain": f"apart-{index}.myshopify.com",
                "webhook_secrets": [f"whsec_apart_{index:02d}_0123456789"],
            },
        )
        got = running.admin("GET", f"/internal/stores/{store}")
        return put.status_code, got.json().get("name", "")

    # Concurrent admin calls: each is its own invocation in its own environment, none reads another's event.
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(rename, range(8)))
    functions = running.admin("GET", "/__local/functions").json()

    assert results == [(201, f"Store {index}") for index in range(8)]
    pids = {name: set(listing["worker_pids"]) for name, listing in functions.items()}
    assert all(pids.values()), pids  # every function has at least one environment of its own
    assert running.process.pid not in set().union(*pids.values())
    for name, own in pids.items():  # no process serves two functions
        others = set().union(*(p for other, p in pids.items() if other != name))
        assert not own & others, name
    assert len(pids["AdminFunction"]) >= 2  # eight concurrent calls took more than one environment
    # the API's functions ahead of the queue workers and schedules for the CPU they share here (never on Lambda)
    niceness = {name: {_nice(pid) for pid in own} for name, own in pids.items()}
    api = ("AdminFunction", "WebhookReceiverFunction", "WidgetFunction")
    assert all(niceness[name] == {os.nice(0)} for name in api), niceness
    assert all(niceness[name] == {os.nice(0) + 5} for name in niceness if name not in api), niceness


def _nice(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rfind(")") + 2 :].split()[16])


def test_make_demo_sends_a_claim_and_its_approval_and_shows_the_ticket_snooze_credit_and_report(running):
    port = running.url.rsplit(":", 1)[1]
    env = {**os.environ, "PORT": port, "CLAIMBRIDGE_LOCAL_DATA": str(running.data_dir)}
    env.pop("CLAIMBRIDGE_ADMIN_API_KEY", None)
    demo = subprocess.run(  # what `make demo` runs
        [sys.executable, "-m", "local.demo"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )

    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "claim.created   -> 202" in demo.stdout and "claim.approved  -> 202" in demo.stdout
    assert re.search(r"ticket\s+[0-9a-f-]{36}", demo.stdout)
    assert re.search(r"credit\s+ISSUED 25.00 USD", demo.stdout)
    assert re.search(r"report\s+REPORTED", demo.stdout)
    assert f"x-api-key: {running.admin_key}" in demo.stdout


def test_make_demo_without_a_running_stack_says_how_to_start_it(tmp_path):
    env = {**os.environ, "PORT": str(free_port()), "CLAIMBRIDGE_LOCAL_DATA": str(tmp_path)}
    demo = subprocess.run([sys.executable, "-m", "local.demo"], cwd=ROOT, env=env, capture_output=True, text=True)

    assert demo.returncode == 1
    assert "make run" in demo.stdout


def test_a_rotated_widget_secret_is_seen_by_the_widgets_own_processes_at_once(running):
    store = "e2e-rotate"
    path = f"/internal/stores/{store}"
    running.admin(
        "PUT",
        path,
        json={
            "name": "Rotate",
            "shop_domain": "rotate.myshopify.com",
            "webhook_secrets": ["whsec_rotate_0123456789"],
            "widget_secret": "wgt_first_0123456789abcdef",
        },
    )
    first = running.admin("POST", f"{path}/widget-url", json={"customer_email": "ann@example.com"}).json()["url"]
    before = requests.get(first, timeout=10).status_code

    rotated = running.admin("PATCH", path, json={"widget_secret": "wgt_second_0123456789abcdef"})
    # the widget's environments are other processes than the admin's: no cache-drop reaches them, a read does
    after = requests.get(first, timeout=10)
    second = running.admin("POST", f"{path}/widget-url", json={"customer_email": "ann@example.com"}).json()["url"]

    assert (before, rotated.status_code, after.status_code) == (200, 200, 401)
    assert requests.get(second, timeout=10).status_code == 200
