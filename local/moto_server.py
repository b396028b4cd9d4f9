"""moto's server, with the stack's KMS keys restored before it answers: ``python -m local.moto_server PORT [KEYS]``.

moto keeps everything in memory and mints a random id and key material for every new key, so a secret sealed in one
run could never be opened in the next. KEYS (a JSON file the stack keeps under its data folder) names each key's id,
description and material; they are put into moto's KMS backend as they were, and the stack uses them instead of
creating new keys. This reaches into moto's backend objects (pinned in requirements-dev.txt): nothing else does.
"""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

ACCOUNT = "123456789012"
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


def main() -> None:
    port, *rest = sys.argv[1:]
    if rest:
        restore_keys(Path(rest[0]))
    from moto.server import main as serve

    serve(["-H", "127.0.0.1", "-p", port])


if __name__ == "__main__":
    main()
