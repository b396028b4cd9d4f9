"""The widget in a real browser: headless Chromium loads a page that frames it from `make run`'s stack, as Richpanel's
sidebar would (about 350 px wide), and reads what an agent sees. The screenshot is kept in artifacts/."""

from __future__ import annotations

import http.server
import shutil
import threading
from pathlib import Path

import requests
from playwright.sync_api import sync_playwright

from local.emulators import free_port
from tests.e2e.test_claims_flow import wait_for

ROOT = Path(__file__).resolve().parents[2]
ARTIFACT = ROOT / "artifacts" / "widget-in-frame.png"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def serve_frame_page(tmp_path: Path, widget_url: str) -> tuple[http.server.ThreadingHTTPServer, str]:
    (tmp_path / "index.html").write_text(
        "<!doctype html><title>Helpdesk</title><body style='margin:0;background:#f4f5f7'>"
        f"<iframe id=widget src='{widget_url}' style='width:350px;height:640px;border:0;background:#fff'></iframe>"
    )
    handler = lambda *a, **kw: http.server.SimpleHTTPRequestHandler(*a, directory=str(tmp_path), **kw)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/index.html"


def test_chromium_renders_the_framed_widget_with_the_customers_order_and_claim(running, tmp_path):
    claim = {
        "claim_id": "browser-claim-1",
        "order_id": "browser-order-1",
        "claim_type": "WRONG_ITEM",
        "claim_description": "Got a red <b>mug</b>, ordered blue",
        "customer": {"email": "hal@example.com", "first_name": "Hal"},
        "order": {"number": "4242", "currency": "USD", "total": "64.00", "created_at": "2026-11-19T08:00:00Z"},
    }
    answer = requests.post(
        f"{running.url}/stores/{running.store_id}/webhooks/claims",
        json={"id": "browser-evt-1", "topic": "claim.created", "body": claim},
        headers={"x-webhook-secret": running.webhook_secret},
        timeout=10,
    )
    assert answer.status_code == 202

    def signed_url() -> str:
        return running.admin(
            "POST", f"/internal/stores/{running.store_id}/widget-url", json={"customer_email": "hal@example.com"}
        ).json()["url"]

    assert wait_for(
        lambda: requests.get(signed_url(), headers={"accept": "application/json"}, timeout=5).json()["claims"]
    )
    server, page_url = serve_frame_page(tmp_path, signed_url())
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 390, "height": 700})
            page.goto(page_url)
            frame = page.frame_locator("#widget")
            text = frame.locator("body").inner_text(timeout=15_000)
            ARTIFACT.parent.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACT))
            scripts = frame.locator("script").count()
            width = frame.locator("body").evaluate("b => b.scrollWidth")
            browser.close()
    finally:
        server.shutdown()

    assert "Order #4242" in text and "64.00 USD" in text
    assert "Claim #browser-claim-1" in text and "Wrong item" in text and "2026-11-19 08:00 UTC" in text
    assert "Got a red <b>mug</b>, ordered blue" in text  # shown as text, not markup
    assert scripts == 0
    assert width <= 350  # readable in the sidebar: no horizontal scrolling
    assert ARTIFACT.stat().st_size > 0
