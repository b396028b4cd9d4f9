"""moto's server, with the stack's KMS keys restored before it answers: ``python -m local.moto_server PORT [KEYS]``.

moto keeps everything in memory and mints a random id and key material for every new key, so a secret sealed in one
run could never be opened in the next. KEYS (a JSON file the stack keeps under its data folder) names each key's id,
description and material; they are put into moto's KMS backend as they were, and the stack uses them instead of
creating new keys.

moto also answers here as it does, only faster (``speed_up``): it was the local stack's bottleneck, not a trait of
SQS, and a benchmark of many stores measured it instead of claimbridge. It also logs no line per request. And its SQS
is made safe for a threaded server (``serialize_sqs``): a receive that raced a delete could fail after it had hidden
messages, which then came back only after their visibility timeout (six minutes for a job).

This reaches into moto's backend objects (pinned in requirements-dev.txt): nothing else does.
"""

from __future__ import annotations

import base64
import functools
import json
import logging
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

ACCOUNT = "123456789012"
EPOCH = datetime(1970, 1, 1)  # moto's times are naive UTC
REGION = "us-east-1"


def restore_keys(path: Path) -> None:
    from moto.kms.models import kms_backends

    backend = kms_backends[ACCOUNT][REGION]
    for saved in json.loads(path.read_text()):
        key = backend.create_key(
            policy=None,
            key_usage="ENCRYPT_DECRYPT",
            key_spec="SYMMETRIC_DEFAULT",
            description=saved["description"],
            tags=None,
        )
        del backend.keys[key.id]
        key.id = saved["key_id"]
        key.arn = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{key.id}"
        key.key_material = base64.b64decode(saved["material"])
        backend.keys[key.id] = key


def speed_up() -> None:
    """The same answers from moto, without its costs that grow with a queue's length or repeat on every request.

    - SQS: every message handed out checked its retention period through the queue's *whole* attribute set, which
      counts every message (visible, delayed, in flight): a receive cost O(received x queued). The period is read
      directly.
    - SQS: every "now" was a datetime subtraction from the epoch (four per message per count): now ``time.time()``.
      A queue of 2,000 deferred jobs then costs a receive microseconds per message, not milliseconds.
    - Every request listed moto's package folder (about 150 ``isdir`` calls, under the server's one lock) and
      introspected its handler's class with ``inspect.getmembers``: both are the same for the server's life, so each
      is done once.
    """
    from moto import backends
    from moto.core import responses
    from moto.sqs import models

    modules = tuple(backends.list_of_moto_modules())
    backends.list_of_moto_modules = lambda: modules
    responses.method_names_from_class = functools.lru_cache(maxsize=None)(responses.method_names_from_class)

    def unix_time(dt: datetime | None = None) -> float:
        return time.time() if dt is None else (dt - EPOCH).total_seconds()

    def unix_time_millis(dt: datetime | None = None) -> float:
        return unix_time(dt) * 1000.0

    def is_message_valid_based_on_retention_period(self: Any, queue_name: str, message: Any) -> bool:
        retention_s = int(self.get_queue(queue_name).message_retention_period)
        return bool(retention_s + message.sent_timestamp / 1000 > time.time())

    models.unix_time = unix_time
    models.unix_time_millis = unix_time_millis
    models.SQSBackend.is_message_valid_based_on_retention_period = is_message_valid_based_on_retention_period  # type: ignore[method-assign]


SQS_LOCK = threading.RLock()


def serialize_sqs() -> None:
    """One SQS operation at a time. moto's SQS backend is not thread-safe: a receive copies the set of messages in
    flight while a delete on another request thread changes it ("Set changed size during iteration"), and a receive
    that fails after it has marked messages received hides them until their visibility timeout. Every operation of the
    backend runs under one lock; a long poll waits for messages outside it, as a real one does."""
    from moto.sqs import models

    backend = models.SQSBackend

    def locked(operation: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(operation)
        def run(*args: Any, **kwargs: Any) -> Any:
            with SQS_LOCK:
                return operation(*args, **kwargs)

        return run

    for name, operation in list(vars(backend).items()):
        if callable(operation) and not name.startswith("_") and name != "receive_message":
            setattr(backend, name, locked(operation))
    receive = backend.receive_message

    def receive_message(
        self: Any,
        queue_name: str,
        count: int,
        wait_seconds_timeout: int,
        visibility_timeout: int,
        message_attribute_names: list[str] | None = None,
    ) -> Any:
        deadline = time.time() + (wait_seconds_timeout or 0)
        queue = self.get_queue(queue_name)
        while True:
            with SQS_LOCK:
                found = receive(self, queue_name, count, 0, visibility_timeout, message_attribute_names)
                now = time.time()
                if found or now >= deadline:
                    return found
                # When the next delayed or hidden message shows: a long poll hands it out then, as SQS does (moto's
                # own wait would notice it only when the wait ends, up to a second late for a job deferred to a slot).
                times = (max(m.delayed_until, m.visible_at) / 1000 for m in queue._messages)
                shows = min((at for at in times if at > now), default=deadline)
            queue.wait_for_messages(min(deadline - now, shows - now + 0.005, 1.0))  # a send wakes it sooner

    backend.receive_message = receive_message  # type: ignore[method-assign]


def main() -> None:
    port, *rest = sys.argv[1:]
    if rest:
        restore_keys(Path(rest[0]))
    speed_up()
    serialize_sqs()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per request costs more than it tells
    from moto.server import main as serve

    serve(["-H", "127.0.0.1", "-p", port])


if __name__ == "__main__":
    main()
