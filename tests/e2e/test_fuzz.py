"""Schema fuzzing: schemathesis generates requests for every operation of the OpenAPI document (valid and not, a
bounded number per operation, seeded) and sends them to `make run`'s stack over HTTP. No answer may be a 5xx, and
every answer must be one the document names, with its content type and schema."""

from __future__ import annotations

import zlib
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from local.openapi import DOCUMENT
from tests.e2e.conftest import RunningStack, start_stack, stop_stack

FUZZ_STORE = "fuzz-store"
FUZZ_SECRET = "whsec_fuzz_0123456789abcdef"
EXAMPLES_PER_OPERATION = 30

schema = schemathesis.openapi.from_path(DOCUMENT)


@pytest.fixture(scope="module")
def fuzzed() -> Iterator[RunningStack]:
    """A stack of its own (the fuzz rewrites stores), with one store whose secret the fuzz knows."""
    stack = start_stack()
    made = stack.admin(
        "PUT",
        f"/internal/stores/{FUZZ_STORE}",
        json={
            "name": "Fuzz",
            "shop_domain": "fuzz.myshopify.com",
            "webhook_secrets": [FUZZ_SECRET],
            "widget_secret": "wgt_fuzz_0123456789abcdef",
        },
    )
    assert made.status_code == 201, made.text
    yield stack
    stop_stack(stack)


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    derandomize=True,  # seeded: the same requests on every run
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_no_request_gets_a_5xx_and_every_answer_is_in_the_document(case, fuzzed):
    # Half the requests go to a store that exists, with its real webhook secret, to reach past the front door.
    if "storeId" in (case.path_parameters or {}) and zlib.crc32(repr(case.body).encode()) % 2 == 0:
        case.path_parameters["storeId"] = FUZZ_STORE
    case.call_and_validate(
        base_url=fuzzed.url,
        headers={"x-api-key": fuzzed.admin_key, "x-webhook-secret": FUZZ_SECRET},
        checks=[not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance],
        timeout=30,
    )
