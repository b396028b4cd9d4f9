"""``python -m local.sandbox``: start every partner fake; print one JSON line of their base URLs; run until stopped."""

from __future__ import annotations

import json
import signal
import sys
import threading

from local.sandbox.core import serve
from local.sandbox.partners import PARTNERS


def main() -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    servers = {name: serve(partner()) for name, partner in PARTNERS.items()}
    urls = {name: f"http://127.0.0.1:{server.server_address[1]}" for name, server in servers.items()}
    sys.stdout.write(json.dumps(urls) + "\n")
    sys.stdout.flush()
    stop.wait()
    for server in servers.values():
        server.shutdown()


if __name__ == "__main__":
    main()
