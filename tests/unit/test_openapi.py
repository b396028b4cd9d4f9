"""The OpenAPI document: generated from the functions' own resolvers, committed current, and covering exactly the
routes template.yaml gives API Gateway (each route's method and path, and which function answers it)."""

from __future__ import annotations

import re

from local.openapi import DOCUMENT, generate, render
from local.template import ROOT, api_routes, load_template

ROUTES = api_routes(load_template())
UNDOCUMENTED = {("GET", "/internal/openapi.json"), ("GET", "/internal/docs")}  # the document's own two routes
METHODS = {"get", "put", "post", "patch", "delete"}


def documented() -> set[tuple[str, str]]:
    document = generate()
    return {(method.upper(), path) for path, ops in document["paths"].items() for method in ops if method in METHODS}


def test_the_committed_document_is_what_the_code_generates():
    assert DOCUMENT.read_text() == render(generate()), "run `make openapi` and commit functions/admin/openapi.json"
    assert (ROOT / "openapi.json").resolve() == DOCUMENT.resolve()


def test_every_documented_operation_is_a_route_api_gateway_has():
    for method, path in documented():
        assert any(r.method == method and r.pattern.match(path) for r in ROUTES), (method, path)


def test_every_route_api_gateway_has_is_documented():
    operations = documented()
    for route in ROUTES:
        if (route.method, route.path) in UNDOCUMENTED:
            continue
        # a route with {name} may be documented once per name (each integration's own body)
        pattern = re.compile("^" + re.sub(r"\\\{name\\\}", r"(\\{name\\}|[a-z_]+)", re.escape(route.path)) + "$")
        assert any(m == route.method and pattern.match(p) for m, p in operations), (route.method, route.path)


def test_admin_operations_need_the_admin_key_and_public_ones_do_not():
    document = generate()
    for path, ops in document["paths"].items():
        for method, op in ops.items():
            needs_key = path.startswith("/internal/")
            assert (op.get("security") == [{"adminKey": []}]) == needs_key, (method, path)
            assert op["responses"], (method, path)
