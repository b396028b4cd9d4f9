"""The template's functions, loaded in this process: their handlers, their environment, a Lambda context."""

from __future__ import annotations

import importlib.util
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from local.template import ROOT, Resolver, resources_of

LAYER_DIR = ROOT / "layers" / "claimbridge"


@dataclass
class LocalContext:
    """The parts of Lambda's context object the handlers and Powertools read."""

    function_name: str
    invoked_function_arn: str
    timeout_s: float
    memory_limit_in_mb: int = 512
    function_version: str = "$LATEST"
    log_group_name: str = "local"
    log_stream_name: str = "local"

    def __post_init__(self) -> None:
        self.aws_request_id = str(uuid.uuid4())
        self._deadline = time.monotonic() + self.timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


Handler = Callable[[dict[str, Any], LocalContext], Any]


@dataclass
class LocalFunction:
    logical_id: str
    spec: dict[str, Any]
    handler: Handler
    timeout_s: float

    def invoke(self, event: dict[str, Any]) -> Any:
        context = LocalContext(
            function_name=self.logical_id,
            invoked_function_arn=f"arn:aws:lambda:us-east-1:123456789012:function:{self.logical_id}",
            timeout_s=self.timeout_s,
            memory_limit_in_mb=int(self.spec.get("MemorySize", 512)),
        )
        try:
            return self.handler(event, context)
        finally:
            # Locally metrics are disabled, and Powertools then never clears its buffer (it would grow, and print
            # every 100 values): clear it after each invocation as a flush would.
            from claimbridge.observability import metrics

            metrics.clear_metrics()


_import_lock = threading.Lock()


def _import_handler(logical_id: str, code_uri: str, handler: str) -> Handler:
    module_file, _, attribute = handler.rpartition(".")
    path = ROOT / code_uri / f"{module_file.replace('.', '/')}.py"
    module_name = f"claimbridge_fn_{logical_id}"
    with _import_lock:
        module: ModuleType | None = sys.modules.get(module_name)
        if module is None:
            if str(LAYER_DIR) not in sys.path:
                sys.path.insert(0, str(LAYER_DIR))
            spec = importlib.util.spec_from_file_location(module_name, path)
            if spec is None or spec.loader is None:
                raise ImportError(f"cannot load {path}")
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module
            spec.loader.exec_module(module)
    handler_fn: Handler = getattr(module, attribute)
    return handler_fn


def function_environment(template: dict[str, Any], resolver: Resolver, logical_id: str) -> dict[str, str]:
    """Globals' variables overlaid by the function's own, resolved against the local resources."""
    variables = dict(template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {}))
    own = template["Resources"][logical_id]["Properties"].get("Environment", {}).get("Variables", {})
    variables.update(own)
    return {name: str(resolver.resolve(value)) for name, value in variables.items()}


def load_functions(template: dict[str, Any]) -> dict[str, LocalFunction]:
    globals_ = template.get("Globals", {}).get("Function", {})
    functions = {}
    for logical_id, spec in resources_of(template, "AWS::Serverless::Function").items():
        props = {**globals_, **spec["Properties"]}
        functions[logical_id] = LocalFunction(
            logical_id=logical_id,
            spec=props,
            handler=_import_handler(logical_id, props["CodeUri"], props["Handler"]),
            timeout_s=float(props.get("Timeout", 3)),
        )
    return functions
