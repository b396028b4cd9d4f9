"""The template's functions, run locally as Lambda runs them: each in its own worker processes (its execution
environments), each worker one invocation at a time, with the function's own environment, a Lambda context and its
timeout. Module state, caches and the logger are then per function and per environment, as deployed.

``inline`` mode instead runs the handlers in this process: the integration tests use it to fault-inject and to drive
handlers step by step, and say so; ``make run``, the end-to-end tests, the soak and the benchmarks use workers.

**CPU, as deployed.** On Lambda no function shares a CPU with another: an API's answer does not slow down because a
queue has a backlog. On a laptop every environment shares its few cores, so the environments of functions that no
API invokes (queue workers, schedules) run at a lower priority (``BACKGROUND_NICE``): a webhook or an admin request is
answered first, and the queues take the CPU it leaves, which on Lambda would be theirs alone anyway.
"""

from __future__ import annotations

import importlib.util
import multiprocessing
import os
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from types import ModuleType
from typing import Any

from local.template import ROOT, Resolver, resources_of

LAYER_DIR = ROOT / "layers" / "claimbridge"
MAX_ENVIRONMENTS = 10  # per function: Lambda scales out further, a laptop need not
READY_TIMEOUT_S = 60.0
BACKGROUND_NICE = 5  # a queue worker's or a schedule's environment: about a third of an API function's CPU share


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


class FunctionError(RuntimeError):
    """The invocation failed: the handler raised, timed out, or its environment died (Lambda's function error)."""


@dataclass(frozen=True)
class FunctionSpec:
    logical_id: str
    code_uri: str
    handler: str
    timeout_s: float
    memory_mb: int
    background: bool = False  # invoked by queues and schedules only, never by the API

    def context(self) -> LocalContext:
        return LocalContext(
            function_name=self.logical_id,
            invoked_function_arn=f"arn:aws:lambda:us-east-1:123456789012:function:{self.logical_id}",
            timeout_s=self.timeout_s,
            memory_limit_in_mb=self.memory_mb,
        )


def _run(handler: Handler, spec: FunctionSpec, event: dict[str, Any]) -> Any:
    try:
        return handler(event, spec.context())
    finally:
        # Locally metrics are disabled, and Powertools then never clears its buffer (it would grow, and print
        # every 100 values): clear it after each invocation as a flush would.
        from claimbridge.observability import metrics

        metrics.clear_metrics()


@dataclass
class LocalFunction:
    spec: FunctionSpec
    environment: dict[str, str] = field(default_factory=dict)
    isolated: bool = False
    _pool: WorkerPool | None = None

    @property
    def logical_id(self) -> str:
        return self.spec.logical_id

    @property
    def timeout_s(self) -> float:
        return self.spec.timeout_s

    def isolate(self, environment: dict[str, str]) -> None:
        """Run in worker processes from now on, with exactly this environment."""
        self.environment, self.isolated = environment, True
        self._pool = WorkerPool(self.spec, environment)

    def warm(self, environments: int = 1) -> None:
        if self._pool is not None:
            self._pool.warm(environments)

    def stop(self) -> None:
        if self._pool is not None:
            self._pool.stop()

    def worker_pids(self) -> list[int]:
        return self._pool.pids() if self._pool is not None else []

    def invoke(self, event: dict[str, Any]) -> Any:
        if self._pool is not None:
            return self._pool.invoke(event)
        return _run(_import_handler(self.spec), self.spec, event)


# -- in this process -------------------------------------------------------------------------------------------------

_import_lock = threading.Lock()


def _import_handler(spec: FunctionSpec) -> Handler:
    module_file, _, attribute = spec.handler.rpartition(".")
    path = ROOT / spec.code_uri / f"{module_file.replace('.', '/')}.py"
    module_name = f"claimbridge_fn_{spec.logical_id}"
    with _import_lock:
        module: ModuleType | None = sys.modules.get(module_name)
        if module is None:
            if str(LAYER_DIR) not in sys.path:
                sys.path.insert(0, str(LAYER_DIR))
            found = importlib.util.spec_from_file_location(module_name, path)
            if found is None or found.loader is None:
                raise ImportError(f"cannot load {path}")
            module = importlib.util.module_from_spec(found)
            sys.modules[module_name] = module
            found.loader.exec_module(module)
    handler_fn: Handler = getattr(module, attribute)
    return handler_fn


# -- in worker processes ---------------------------------------------------------------------------------------------


def _environment_main(connection: Connection, spec: FunctionSpec, environment: dict[str, str]) -> None:
    """One execution environment: the function's environment only, its handler imported once (the cold start),
    then one invocation at a time until the stack closes the pipe."""
    os.environ.clear()
    os.environ.update(environment)
    if spec.background:
        os.nice(BACKGROUND_NICE)
    try:
        handler = _import_handler(spec)
    except BaseException:  # noqa: BLE001 - an init error is the invocation's answer, as Lambda's is
        connection.send(("init_error", traceback.format_exc()))
        return
    connection.send(("ready", os.getpid()))
    while True:
        try:
            event = connection.recv()
        except (EOFError, OSError):
            return  # the stack is gone
        try:
            connection.send(("ok", _run(handler, spec, event)))
        except BaseException:  # noqa: BLE001 - reported to the caller; this environment lives on
            connection.send(("error", traceback.format_exc()))


# Imported once by multiprocessing's fork server, before any environment exists: each environment is then forked from
# it with these already loaded (about a second of CPU each otherwise, times every environment of every function at
# every start). Third-party packages only, which read no environment variable at import: the function's own code, and
# everything that reads its environment (boto3's session, Powertools' Logger and Metrics), is imported in the
# environment after its environment is set, as on Lambda.
PRELOADED = (
    "boto3",
    "botocore.session",
    "pydantic",
    "requests",
    "aws_lambda_powertools",
    "aws_lambda_powertools.event_handler",
    "aws_lambda_powertools.utilities.batch",
    "aws_lambda_powertools.utilities.data_classes",
)


def _context() -> Any:
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(list(PRELOADED))
    return context


def start_environment_server() -> None:
    """Start the fork server now (its imports take a second or two): the stack does it while the emulators start."""
    from multiprocessing import forkserver

    _context()
    forkserver.ensure_running()


class _Environment:
    def __init__(self, spec: FunctionSpec, environment: dict[str, str]) -> None:
        parent, child = _context().Pipe()
        self.connection = parent
        self.process = _context().Process(
            target=_environment_main, args=(child, spec, environment), name=f"fn-{spec.logical_id}", daemon=True
        )
        self.process.start()
        child.close()
        self.ready = False

    def wait_ready(self, spec: FunctionSpec) -> None:
        if self.ready:
            return
        if not self.connection.poll(READY_TIMEOUT_S):
            self.kill()
            raise FunctionError(f"{spec.logical_id}: its environment did not start within {READY_TIMEOUT_S:.0f} s")
        kind, detail = self._receive(spec)
        if kind != "ready":
            self.kill()
            raise FunctionError(f"{spec.logical_id}: init failed\n{detail}")
        self.ready = True

    def _receive(self, spec: FunctionSpec) -> tuple[str, Any]:
        try:
            message: tuple[str, Any] = self.connection.recv()
        except (EOFError, OSError) as exc:
            self.kill()
            raise FunctionError(f"{spec.logical_id}: its environment exited ({self.process.exitcode})") from exc
        return message

    def invoke(self, spec: FunctionSpec, event: dict[str, Any]) -> Any:
        self.wait_ready(spec)
        self.connection.send(event)
        if not self.connection.poll(spec.timeout_s + 1.0):
            self.kill()  # as Lambda does at the timeout: the environment is discarded mid-invocation
            raise FunctionError(f"{spec.logical_id}: Task timed out after {spec.timeout_s:.0f} seconds")
        kind, detail = self._receive(spec)
        if kind != "ok":
            raise FunctionError(f"{spec.logical_id}: the handler raised\n{detail}")
        return detail

    @property
    def alive(self) -> bool:
        return self.process.is_alive()

    def kill(self) -> None:
        self.connection.close()
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=5)


class WorkerPool:
    """A function's execution environments: made on demand up to ``MAX_ENVIRONMENTS``, reused when idle."""

    def __init__(self, spec: FunctionSpec, environment: dict[str, str]) -> None:
        self._spec = spec
        self._environment = environment
        self._idle: list[_Environment] = []
        self._all: list[_Environment] = []
        self._available = threading.Condition()
        self._stopped = False

    def warm(self, environments: int = 1) -> None:
        """Start environments now, one after another, until there are ``environments`` (their cold starts off the
        first requests' path)."""
        while True:
            with self._available:
                if len(self._all) >= min(environments, MAX_ENVIRONMENTS):
                    return
                environment = _Environment(self._spec, self._environment)
                self._all.append(environment)
            environment.wait_ready(self._spec)
            with self._available:
                self._idle.append(environment)
                self._available.notify()

    def _acquire(self) -> _Environment:
        with self._available:
            while True:
                if self._stopped:
                    raise FunctionError(f"{self._spec.logical_id}: the stack is stopping")
                while self._idle:
                    environment = self._idle.pop()
                    if environment.alive:
                        return environment
                    self._all.remove(environment)
                if len(self._all) < MAX_ENVIRONMENTS:
                    environment = _Environment(self._spec, self._environment)
                    self._all.append(environment)
                    return environment
                self._available.wait()

    def invoke(self, event: dict[str, Any]) -> Any:
        environment = self._acquire()
        try:
            return environment.invoke(self._spec, event)
        finally:
            with self._available:
                if environment.alive and not self._stopped:
                    self._idle.append(environment)
                else:
                    if environment in self._all:
                        self._all.remove(environment)
                    environment.kill()
                self._available.notify()

    def pids(self) -> list[int]:
        with self._available:
            return [environment.process.pid for environment in self._all if environment.process.pid is not None]

    def stop(self) -> None:
        with self._available:
            self._stopped = True
            environments = list(self._all)
            self._all.clear()
            self._idle.clear()
            self._available.notify_all()
        for environment in environments:
            environment.kill()


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
        events = (props.get("Events") or {}).values()
        functions[logical_id] = LocalFunction(
            FunctionSpec(
                logical_id=logical_id,
                code_uri=props["CodeUri"],
                handler=props["Handler"],
                timeout_s=float(props.get("Timeout", 3)),
                memory_mb=int(props.get("MemorySize", 512)),
                background=bool(events) and all(event["Type"] != "Api" for event in events),
            )
        )
    return functions


def stop_process_helpers() -> None:
    """Stop (and reap) multiprocessing's fork server and resource tracker, which the worker processes started: nothing
    the stack started outlives it, not even as a zombie where PID 1 does not reap (containers)."""
    from multiprocessing import forkserver, resource_tracker

    for helper in (forkserver._forkserver, resource_tracker._resource_tracker):
        stop = getattr(helper, "_stop", None)
        if stop is not None:
            stop()
