"""``make openapi``: the API's OpenAPI document, generated from the functions' own Powertools resolvers (every
``app`` in ``functions/*/app.py`` and ``functions/*/routes.py``, merged), written to ``functions/admin/openapi.json``
(``openapi.json`` at the top links to it), which the admin function serves at ``/internal/openapi.json`` and
``/internal/docs``. ``--check`` exits 1 if the committed document is not what the code generates."""

from __future__ import annotations

import json
import os
import sys
import warnings
from typing import Any

from local.template import ROOT

DOCUMENT = ROOT / "functions" / "admin" / "openapi.json"
LAYER = ROOT / "layers" / "claimbridge"


def generate() -> dict[str, Any]:
    # The handlers read their settings lazily; importing them needs none, but Powertools' tracer wants a region.
    os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    if str(LAYER) not in sys.path:
        sys.path.insert(0, str(LAYER))
    from aws_lambda_powertools.event_handler.openapi.merge import OpenAPIMerge

    merge = OpenAPIMerge(
        title="claimbridge",
        version="1.0.0",
        description=(
            "Order Protection's claims integration: webhooks in, the in-helpdesk widget, and the admin API. "
            "Admin routes take the deployment's admin key in x-api-key."
        ),
        on_conflict="error",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        merge.discover(ROOT / "functions", pattern=["app.py", "routes.py"], recursive=True, project_root=ROOT)
        document: dict[str, Any] = json.loads(merge.get_openapi_json_schema())
    return document


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def main() -> int:
    text = render(generate())
    if "--check" in sys.argv[1:]:
        if not DOCUMENT.exists() or DOCUMENT.read_text() != text:
            print(f"{DOCUMENT.relative_to(ROOT)} is not what the code generates: run `make openapi` and commit it")
            return 1
        return 0
    DOCUMENT.write_text(text)
    print(f"wrote {DOCUMENT.relative_to(ROOT)}: {len(json.loads(text)['paths'])} paths")
    return 0


if __name__ == "__main__":
    sys.exit(main())
