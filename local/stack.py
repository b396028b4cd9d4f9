"""The whole stack on one machine: emulated AWS, the partner sandbox, the API, the SQS pollers and the schedules."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from local.emulators import Emulators, LocalResources, create_resources, die_with_parent, stop
from local.functions import (
    LocalFunction,
    function_environment,
    load_functions,
    start_environment_server,
    stop_process_helpers,
)
from local.gateway import ApiAnswer, LocalApi, serve
from local.pollers import Poller, sqs_sources
from local.scheduler import Scheduler, schedules
from local.template import ROOT, api_routes, load_template, resources_of

PARTNER_URL_VARIABLES = {
    "richpanel": "RICHPANEL_API_BASE_URL",
    "rise": "RISE_API_BASE_URL",
    "rivo": "RIVO_API_BASE_URL",
    "postco": "POSTCO_API_BASE_URL",
    "order_protection": "ORDER_PROTECTION_API_BASE_URL",
}
LOCAL_ENVIRONMENT = {
    "POWERTOOLS_TRACE_DISABLED": "true",  # no X-Ray daemon here
    "POWERTOOLS_METRICS_DISABLED": "true",  # EMF lines would drown the log; deployed, they are CloudWatch metrics
    "POWERTOOLS_DEV": "false",
    "PYTHONUNBUFFERED": "1",
}
# What a worker process takes from the caller's environment besides its function's own variables.
PASSED_THROUGH = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "PYTHONPATH", "POWERTOOLS_LOG_LEVEL")
DEFAULT_DATA_DIR = ROOT / ".local-data"
_SET_BY_STACK: dict[str, str] = {}


def load_or_make(path: Path, make: dict[str, str]) -> dict[str, str]:
    """The values kept in ``path`` (a JSON object, private to the user), with any missing ones made and kept."""
    kept: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    if any(name not in kept for name in make):
        kept = {**make, **kept}
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(kept, indent=1))
        path.chmod(0o600)
    return kept


class Sandbox:
    """The partner sandbox as a child process; its base URLs, as it announced them."""

    def __init__(self, log_dir: Path) -> None:
        self._log_dir = log_dir
        self.process: subprocess.Popen[bytes] | None = None
        self.urls: dict[str, str] = {}

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "local.sandbox"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=(self._log_dir / "sandbox.log").open("wb"),
            preexec_fn=die_with_parent,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the partner sandbox did not start; see {self._log_dir / 'sandbox.log'}")
        self.urls = json.loads(line)

    def stop(self) -> None:
        stop(self.process)


@dataclass
class LocalStack:
    """Start with ``start()``; ``api.invoke`` or ``http://host:port`` (HTTP) reach the same handlers.

    ``data_dir`` keeps the tables, the KMS keys, the admin key and the demo store's secrets across runs (``None``:
    everything fresh). ``inline`` runs the handlers in this process instead of per-function worker processes.
    """

    port: int = 3000
    host: str = "127.0.0.1"
    admin_api_key: str = ""
    log_dir: Path = ROOT / ".local-logs"
    data_dir: Path | None = None
    inline: bool = False
    serve_http: bool = True
    run_pollers: bool = True
    run_schedules: bool = True
    template: dict[str, Any] = field(default_factory=load_template)

    def __post_init__(self) -> None:
        self.kept: dict[str, str] = {}
        if self.data_dir is not None:
            self.kept = load_or_make(
                self.data_dir / "stack.json",
                {
                    "admin_api_key": secrets.token_urlsafe(24),
                    "demo_webhook_secret": "whsec_" + secrets.token_hex(16),
                    "demo_widget_secret": "wgt_" + secrets.token_hex(16),
                },
            )
        self.admin_api_key = (
            self.admin_api_key
            or os.environ.get("CLAIMBRIDGE_ADMIN_API_KEY")
            or self.kept.get("admin_api_key")
            or secrets.token_urlsafe(24)
        )
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.emulators = Emulators(self.log_dir, self.data_dir)
        self.sandbox = Sandbox(self.log_dir)
        self.stop_event = threading.Event()
        self.pollers: list[Poller] = []
        self.functions: dict[str, LocalFunction] = {}
        self.partner_urls: dict[str, str] = {}
        self._server: Any = None

    # -- lifecycle -----------------------------------------------------------------------------------------------

    def start(self) -> LocalStack:
        try:
            if not self.inline:  # the environments' fork server, while the emulators start
                server = threading.Thread(target=start_environment_server, daemon=True)
                server.start()
            self.emulators.start()
            self.sandbox.start()
            self.resources: LocalResources = create_resources(self.emulators, self.template)
            environments = self._configure_environment()
            self.functions = load_functions(self.template)
            if not self.inline:
                server.join()
                for logical_id, function in self.functions.items():
                    function.isolate(environments[logical_id])
                warming = [threading.Thread(target=f.warm, daemon=True) for f in self.functions.values()]
                for thread in warming:
                    thread.start()
                for thread in warming:
                    thread.join()
            self.scheduler = Scheduler(schedules(self.template), self.functions, self.stop_event)
            self.api = LocalApi(
                api_routes(self.template), self.functions, admin_api_key=self.admin_api_key, control=self._control
            )
            if self.run_pollers:
                sqs = self.emulators.client("sqs")
                for source in sqs_sources(self.template, self.resources.resolver):
                    poller = Poller(source, self.functions[source.function], sqs, self.stop_event)
                    poller.start()
                    self.pollers.append(poller)
            if self.run_schedules:
                self.scheduler.start()
            if self.serve_http:
                self._server = serve(self.api, self.host, self.port)
                self.port = self._server.server_address[1]
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        self.stop_event.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        for function in self.functions.values():
            function.stop()
        stop_process_helpers()
        self.sandbox.stop()
        self.emulators.stop()

    def _configure_environment(self) -> dict[str, dict[str, str]]:
        """Each function's environment: the template's variables resolved locally, partners pointed at the sandbox
        unless the caller's environment names another base URL. This process gets all of them merged (inline
        handlers, and the tests' and tools' own reads of the table, use it)."""
        # A value an earlier stack in this process set is not the caller's choice (tests restart stacks).
        caller = {name: value for name, value in os.environ.items() if _SET_BY_STACK.get(name) != value}
        local = {
            **self.emulators.environment(),
            **LOCAL_ENVIRONMENT,
            **{name: caller[name] for name in PASSED_THROUGH if name in caller},
        }
        for partner, variable in PARTNER_URL_VARIABLES.items():
            self.partner_urls[partner] = caller.get(variable) or self.sandbox.urls.get(partner) or ""
        environments: dict[str, dict[str, str]] = {}
        for logical_id in resources_of(self.template, "AWS::Serverless::Function"):
            environment = function_environment(self.template, self.resources.resolver, logical_id)
            for partner, variable in PARTNER_URL_VARIABLES.items():
                if variable in environment and self.partner_urls[partner]:
                    environment[variable] = self.partner_urls[partner]
            if "WIDGET_FRAME_ANCESTORS" in environment:
                # Locally a page on this machine may frame the widget too (the browser test does).
                environment["WIDGET_FRAME_ANCESTORS"] = caller.get("WIDGET_FRAME_ANCESTORS") or (
                    environment["WIDGET_FRAME_ANCESTORS"] + " http://127.0.0.1:* http://localhost:*"
                )
            if logical_id == "AdminFunction":
                # No SigV4 here: the admin API runs with named keys, the printed admin key as the bootstrap key.
                environment["ADMIN_AUTH"] = "KEYS"
                environment["ADMIN_BOOTSTRAP_KEY_DIGEST"] = hashlib.sha256(self.admin_api_key.encode()).hexdigest()
            environments[logical_id] = {**environment, **local}
        merged: dict[str, str] = {}
        for environment in environments.values():
            merged.update(environment)
        os.environ.update(merged)
        _SET_BY_STACK.update(merged)
        from claimbridge.config import get_settings

        get_settings.cache_clear()
        return environments

    def _control(self, method: str, what: str) -> ApiAnswer:
        """``GET /__local/schedules`` lists the schedules; ``POST /__local/schedules/<Function.Event>`` fires one;
        ``GET /__local/functions`` lists each function's worker processes."""
        if what == "schedules" and method == "GET":
            listing = {name: {"every_s": s.every_s} for name, s in self.scheduler.entries.items()}
            return ApiAnswer(200, {"Content-Type": "application/json"}, json.dumps(listing).encode())
        if what == "functions" and method == "GET":
            # Each function's execution environments (worker process ids): apart per function, as on Lambda.
            workers = {name: {"worker_pids": f.worker_pids()} for name, f in self.functions.items()}
            return ApiAnswer(200, {"Content-Type": "application/json"}, json.dumps(workers).encode())
        name = what.removeprefix("schedules/")
        if what.startswith("schedules/") and method == "POST" and name in self.scheduler.entries:
            result = self.scheduler.fire(name)
            return ApiAnswer(
                200, {"Content-Type": "application/json"}, json.dumps({"result": result}, default=str).encode()
            )
        return ApiAnswer(404, {"Content-Type": "application/json"}, b'{"message": "unknown local control"}')

    # -- conveniences for the CLI and the tests ------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _seed_demo_loyalty(self) -> None:
        """The sandbox's Rivo with a member, rewards, an earning rule and tiers, so Rivo's actions answer something
        (the sandbox keeps nothing across runs)."""
        url = self.sandbox.urls.get("rivo")
        if not url or self.partner_urls.get("rivo") != url:
            return
        state = {
            "customers": {
                "ann@example.com": {
                    "customer_id": 7001,
                    "email": "ann@example.com",
                    "first_name": "Ann",
                    "loyalty_status": "member",
                    "points_tally": 1200,
                    "credits_tally": "15.00",
                    "vip_tier": {"name": "Gold"},
                    "points_expire_at": "2027-06-30T00:00:00Z",
                }
            },
            "rewards": [
                {
                    "id": 501,
                    "name": "$5 off",
                    "purchase_type": "points",
                    "reward_type": "fixed_amount",
                    "points_amount": 500,
                },
                {
                    "id": 502,
                    "name": "Free shipping",
                    "purchase_type": "points",
                    "reward_type": "free_shipping",
                    "points_amount": 300,
                },
            ],
            "earning_rules": [{"id": 601, "name": "Place an order", "points_amount": 10, "enabled": True}],
            "vip_tiers": [
                {"id": 701, "name": "Silver", "threshold": "100.00"},
                {"id": 702, "name": "Gold", "threshold": "500.00"},
            ],
            "memberships": {
                "ann@example.com": {"membership": {"status": "active"}, "subscription": {"interval": "month"}}
            },
        }
        import requests

        requests.put(url + "/__sandbox/state", json=state, timeout=10).raise_for_status()

    def admin(self, method: str, path: str, body: Any = None) -> ApiAnswer:
        return self.api.invoke(
            method,
            path,
            {"x-api-key": self.admin_api_key, "content-type": "application/json"},
            json.dumps(body) if body is not None else None,
        )

    def create_demo_store(self, store_id: str = "demo-store") -> dict[str, str]:
        """A store with working sandbox settings for every partner; returns what a user needs to call it."""
        self._seed_demo_loyalty()
        webhook_secret = (
            os.environ.get("CLAIMBRIDGE_DEMO_WEBHOOK_SECRET")
            or self.kept.get("demo_webhook_secret")
            or "whsec_" + secrets.token_hex(16)
        )
        widget_secret = self.kept.get("demo_widget_secret") or "wgt_" + secrets.token_hex(16)
        answer = self.admin("GET", "/internal/stores/" + store_id)
        if answer.status == 200:  # kept from an earlier run: left as the user may have changed it
            return {
                "store_id": store_id,
                "webhook_secret": webhook_secret,
                "widget_secret": widget_secret,
                "skipped": "",
                "kept": "yes",
            }
        steps = [
            (
                "/internal/stores/" + store_id,
                {
                    "name": "Demo Store",
                    "shop_domain": "demo-store.myshopify.com",
                    "webhook_secrets": [webhook_secret],
                    "widget_secret": widget_secret,
                    "credit_provider": "rise",
                    "currency": "USD",
                    "max_credit_amount": "500.00",
                },
            ),
            (
                f"/internal/integrations/richpanel/stores/{store_id}",
                {
                    "api_key": "rp_demo_" + secrets.token_hex(8),
                    "default_team_id": "6f1c1b7e-3a51-4a2b-9f0e-1d2c3b4a5f60",
                    "default_channel": "email",
                },
            ),
            (
                f"/internal/integrations/rise/stores/{store_id}",
                {"credit_api_token": "rise_demo_" + secrets.token_hex(8)},
            ),
            (f"/internal/integrations/rivo/stores/{store_id}", {"api_key": "rivo_demo_" + secrets.token_hex(8)}),
            (
                f"/internal/integrations/postco/stores/{store_id}",
                {"api_key": "sk_demo_" + secrets.token_hex(8), "bonus": {"type": "percent", "value": "10"}},
            ),
            (
                f"/internal/integrations/order_protection/stores/{store_id}",
                {"api_token": "op_demo_" + secrets.token_hex(8)},
            ),
        ]
        answer = self.admin("PUT", steps[0][0], steps[0][1])
        if answer.status not in (200, 201):
            raise RuntimeError(f"demo store: PUT {steps[0][0]} answered {answer.status}: {answer.body.decode()}")
        skipped: list[str] = []
        for path, body in steps[1:]:
            partner = path.split("/")[3]
            if self.partner_urls.get(partner) != self.sandbox.urls.get(partner):
                # Its made-up key would be refused there: configure this partner yourself with a real key.
                skipped.append(f"{partner} (pointed at {self.partner_urls.get(partner)}, not the sandbox)")
                continue
            answer = self.admin("PUT", path, body)
            if answer.status not in (200, 201):  # never die for the demo: say what did not work
                skipped.append(f"{partner} (the sandbox answered {answer.status})")
        return {
            "store_id": store_id,
            "webhook_secret": webhook_secret,
            "widget_secret": widget_secret,
            "skipped": "; ".join(skipped),
            "kept": "",
        }
