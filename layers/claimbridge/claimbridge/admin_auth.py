"""Who calls the admin API, and what they may do.

Two modes (template parameter ``AdminAuth``, the admin function's ``ADMIN_AUTH``):

- ``IAM`` (deployed default): API Gateway checks the SigV4 signature; the caller is the IAM principal, recorded on every
  audited action. What a principal may call is IAM's to say (``execute-api:Invoke`` on route ARNs).
- ``KEYS``: named admin keys in ``x-api-key``, kept only as SHA-256 digests in the table, each limited to some stores
  (or all) and to a scope: ``read`` (every GET, and signing widget URLs), ``no_money`` (also saving integration
  settings), ``full`` (also store profiles, bonus credits, Rivo's write actions, ledger actions, queue redrives and
  admin keys). A bootstrap key's digest (``ADMIN_BOOTSTRAP_KEY_DIGEST``) is a full key for every store: it creates
  the named ones. Locally ``make run`` runs in this mode with its printed admin key as the bootstrap key.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from claimbridge.bounds import is_store_id
from claimbridge.errors import ConflictError, DomainError, ResourceNotFoundError, invalid
from claimbridge.store import ConditionFailedError, Store

Scope = Literal["read", "no_money", "full"]
SCOPES: tuple[Scope, ...] = ("read", "no_money", "full")  # each allows what the ones before it allow
KEY_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
LIST_PK = "ADMINKEYS"


class UnauthenticatedError(DomainError):
    status = 401


class ForbiddenError(DomainError):
    status = 403


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class Caller:
    name: str  # what the audit records: the IAM principal's ARN, or key:<name>
    scope: Scope
    stores: frozenset[str] | None  # None: every store

    def check(self, need: Scope, store_id: str | None) -> None:
        """Raise ForbiddenError naming what is missing, or return."""
        if SCOPES.index(self.scope) < SCOPES.index(need):
            raise ForbiddenError(f"{self.name} has scope {self.scope}; this needs {need}")
        if self.stores is not None and (store_id is None or store_id not in self.stores):
            where = f"store {store_id}" if store_id else "every store"
            raise ForbiddenError(f"{self.name} is not allowed {where}")


def needed_scope(method: str, resource: str) -> Scope:
    """The scope a route needs, from API Gateway's method and resource path. Changing a store's profile needs
    ``full``: its webhook secrets admit approvals (which pay credits) and its cap releases held ones."""
    if resource.startswith("/internal/admin-keys"):
        return "full"  # listing them too: names, scopes and stores are a map of who can do what
    if method == "GET" or resource.endswith("/widget-url"):
        return "read"
    if resource.endswith(("/bonus-credits", "/actions", "/redrive")) or resource == "/internal/stores/{storeId}":
        return "full"
    if resource.endswith("/actions/{action}"):  # Rivo's writes: points, credits, rewards, memberships
        return "full"
    return "no_money"


class AdminKeys:
    def __init__(self, store: Store, *, bootstrap_digest: str = "", clock: Any = time.time) -> None:
        self._store = store
        self._bootstrap = bootstrap_digest
        self._clock = clock

    def authenticate(self, key: str | None) -> Caller:
        if not key or len(key) > 512 or not key.isascii():
            raise UnauthenticatedError("missing or wrong x-api-key")
        digest = key_digest(key)
        if self._bootstrap and hmac.compare_digest(digest, self._bootstrap):
            return Caller("key:bootstrap", "full", None)
        item = self._store.get(f"ADMINKEY#{digest}", "KEY")
        if item is None:
            raise UnauthenticatedError("missing or wrong x-api-key")
        stores = item.get("stores")
        return Caller(f"key:{item['name']}", item["scope"], None if stores is None else frozenset(stores))

    def create(self, body: Any, created_by: str) -> dict[str, Any]:
        """A new named key: its value is in this answer only, never again."""
        if not isinstance(body, Mapping) or set(body) - {"name", "scope", "stores"}:
            raise invalid("body", "must be {name, scope, stores?}")
        name, scope, stores = body.get("name"), body.get("scope"), body.get("stores")
        if not isinstance(name, str) or not KEY_NAME.fullmatch(name):
            raise invalid("name", "1 to 64 lower-case letters, digits, '.', '_' or '-'")
        if scope not in SCOPES:
            raise invalid("scope", f"one of {', '.join(SCOPES)}")
        if stores is not None and (
            not isinstance(stores, list) or not stores or not all(isinstance(s, str) and is_store_id(s) for s in stores)
        ):
            raise invalid("stores", "a non-empty list of store ids, or omitted for every store")
        key = "cbk_" + secrets.token_urlsafe(32)
        digest = key_digest(key)
        record = {
            "name": name,
            "scope": scope,
            "stores": sorted(set(stores)) if stores else None,
            "created_by": created_by,
            "created_at": int(self._clock()),
        }
        try:
            self._store.put(
                {"PK": LIST_PK, "SK": f"NAME#{name}", "digest": digest, **record},
                condition="attribute_not_exists(PK)",
            )
        except ConditionFailedError:
            raise ConflictError(f"an admin key named {name} exists: delete it first") from None
        self._store.put({"PK": f"ADMINKEY#{digest}", "SK": "KEY", **record})
        return {**public(record), "key": key}

    def list(self) -> list[dict[str, Any]]:
        return [public(item) for item in self._store.query_partition(LIST_PK, sk_prefix="NAME#")]

    def delete(self, name: str) -> None:
        item = self._store.get(LIST_PK, f"NAME#{name}") if KEY_NAME.fullmatch(name) else None
        if item is None:
            raise ResourceNotFoundError(f"no admin key named {name}")
        self._store.delete(f"ADMINKEY#{item['digest']}", "KEY")  # refused from the next request on
        self._store.delete(LIST_PK, f"NAME#{name}")


def public(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: item.get(k) for k in ("name", "scope", "stores", "created_by", "created_at")}


def iam_caller(identity: Mapping[str, Any]) -> Caller:
    """The SigV4 caller API Gateway authorized: its principal, with what IAM let it call."""
    return Caller(str(identity.get("userArn") or identity.get("caller") or "iam:unknown"), "full", None)
