"""``make run``: the whole stack locally. Ctrl-C stops everything it started."""

from __future__ import annotations

import faulthandler
import os
import signal
import threading
from pathlib import Path

from local.stack import DEFAULT_DATA_DIR, LocalStack


def demo_integrations(demo: dict[str, str]) -> str:
    if demo["kept"]:
        return "kept from an earlier run, as it was left"
    return "all on the partner sandbox" if not demo["skipped"] else "skipped: " + demo["skipped"]


def main() -> None:
    faulthandler.register(signal.SIGUSR1)  # `kill -USR1 <pid>` prints every thread's stack
    data_dir = Path(os.environ.get("CLAIMBRIDGE_LOCAL_DATA") or DEFAULT_DATA_DIR)
    stack = LocalStack(port=int(os.environ.get("PORT", "3000")), data_dir=data_dir)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    print("claimbridge: starting DynamoDB Local, moto, the partner sandbox and the API ...", flush=True)
    stack.start()
    try:
        demo = stack.create_demo_store()
        url = stack.url
        print(
            f"""
claimbridge is running.

  API                 {url}
  admin API key       {stack.admin_api_key}   (x-api-key; set CLAIMBRIDGE_ADMIN_API_KEY to choose it)
  DynamoDB Local      {stack.emulators.dynamodb_endpoint}
  moto (SQS/KMS/EB)   {stack.emulators.moto_endpoint}
  partner sandbox     {"  ".join(f"{name}={base}" for name, base in stack.partner_urls.items() if base)}
  logs                {stack.log_dir}
  data                {data_dir}   (kept across runs; `make reset` clears it)

  demo store          {demo["store_id"]}   (shop demo-store.myshopify.com)
  webhook secret      {demo["webhook_secret"]}
  widget secret       {demo["widget_secret"]}
  demo integrations   {demo_integrations(demo)}

Try it:
  curl -s -H 'x-api-key: {stack.admin_api_key}' {url}/internal/stores/{demo["store_id"]}
  curl -s -H 'x-api-key: {stack.admin_api_key}' {url}/internal/integrations/richpanel/stores/{demo["store_id"]}/teams
  curl -s -H 'x-api-key: {stack.admin_api_key}' \\
    '{url}/internal/integrations/rivo/stores/{demo["store_id"]}/actions/get_customer?customer_email=ann@example.com'

Ctrl-C stops everything.""",
            flush=True,
        )
        # A timed wait: a signal delivered to another thread only runs its handler when the main thread wakes.
        while not done.wait(timeout=0.5):
            pass
    finally:
        print("claimbridge: stopping ...", flush=True)
        stack.stop()


if __name__ == "__main__":
    main()
