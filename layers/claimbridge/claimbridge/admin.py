"""The admin API's domain: store profiles and integration settings, validated, sealed, read back masked."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from pydantic import ValidationError

from claimbridge.bounds import check_id, check_store_id, is_email
from claimbridge.claims import TICKET_SKIPPED, phone_number
from claimbridge.clients.http import AuthError, IntegrationError
from claimbridge.clients.richpanel import RichpanelClient, Team
from claimbridge.credits import follow_up, new_row
from claimbridge.crypto import SecretBox, mask_secret, secret_digest
from claimbridge.directory import StoreDirectory
from claimbridge.errors import (
    ConflictError,
    ResourceNotFoundError,
    UnavailableError,
    invalid,
    problems_from_validation,
)
from claimbridge.ledger import TRANSITIONS, Ledger, LostRaceError, Outcome, State, public_ledger_row
from claimbridge.limits import BonusBudget, MoneyLimits
from claimbridge.models.credits import BonusCreditIn, CreditJob, LedgerActionIn, reason_slug
from claimbridge.models.settings import (
    INTEGRATIONS,
    IntegrationSettings,
    RichpanelSettings,
    StoreProfileIn,
)
from claimbridge.money import MoneyError, parse_amount
from claimbridge.observability import logger
from claimbridge.reports import public_report
from claimbridge.returns import sync_state
from claimbridge.store import ConditionFailedError, Store, now_iso
from claimbridge.sweeper import REPAIRS, Sweeper
from claimbridge.widget import MAX_SKEW_S, signed_query, widget_url

STORE_SECRETS_PURPOSE = "store"
OPERATOR_STATES = ("HELD", "UNKNOWN", "FAILED")

RichpanelFactory = Callable[[str], RichpanelClient]
CreditEnqueuer = Callable[[CreditJob], None]


PROFILE_FIELDS = ("name", "shop_domain", "credit_provider", "currency", "max_credit_amount")


def _integration_purpose(name: str) -> str:
    return f"integration:{name}"


class AdminService:
    def __init__(
        self,
        *,
        store: Store,
        secret_box: SecretBox,
        richpanel: RichpanelFactory,
        enqueue_credit: CreditEnqueuer | None = None,
        enqueue_claim: Callable[[str, str], None] | None = None,
        enqueue_report: Callable[[dict[str, Any]], None] | None = None,
        enqueue_sync: Callable[[str, str], None] | None = None,
        directory: StoreDirectory | None = None,
        limits: MoneyLimits | None = None,
    ) -> None:
        self._store = store
        self._limits = limits or MoneyLimits()
        self._budget = BonusBudget(store, self._limits)
        self._box = secret_box
        self._richpanel = richpanel
        self._enqueue_credit = enqueue_credit
        self._directory = directory or StoreDirectory(store=store, secret_box=secret_box)
        self._ledger = Ledger(store)
        self._enqueue_claim = enqueue_claim
        self._enqueue_report = enqueue_report
        self._enqueue_sync = enqueue_sync
        self._sweeper = Sweeper(
            store=store,
            enqueue_credit=lambda job: self._enqueue_credit(job) if self._enqueue_credit else None,
            enqueue_event=lambda event: None,
        )

    # -- store profile -------------------------------------------------------------------------------------------

    def put_store(self, store_id: str, body: Any, *, partial: bool = False) -> tuple[dict[str, Any], bool]:
        """Create or replace (PUT) or change (``partial``: PATCH) a store's profile; its public view and whether it
        was created. One rule for every field, secrets too: PUT replaces the profile with the body (an omitted
        optional field is cleared, the webhook secrets are required); PATCH changes only the fields it names."""
        check_store_id(store_id)
        existing = self._store.get_store_profile(store_id)
        asked_cap = isinstance(body, dict) and "max_credit_amount" in body
        if partial:
            if existing is None:
                raise ResourceNotFoundError(f"store {store_id} not found: create it with PUT")
            if not isinstance(body, dict):
                raise invalid("body", "must be a JSON object")
            kept = {name: existing.get(name) for name in PROFILE_FIELDS if existing.get(name) is not None}
            if kept.get("max_credit_amount") is not None:
                kept["max_credit_amount"] = str(kept["max_credit_amount"])
            body = {**kept, **body}
        try:
            profile = StoreProfileIn.model_validate(body)
        except ValidationError as error:
            raise problems_from_validation(error) from error
        old_secrets: dict[str, Any] = {}
        if existing is not None:
            old_secrets = self._box.open(existing["secrets"], store_id=store_id, purpose=STORE_SECRETS_PURPOSE)
        if profile.webhook_secrets is None and not partial:
            raise invalid("webhook_secrets", "required: PUT replaces the whole profile (PATCH changes some fields)")
        keep_widget = partial and "widget_secret" not in body
        new_widget = profile.widget_secret.get_secret_value() if profile.widget_secret is not None else None

        secrets = {
            # The customer hash key is the store's own: it keys customer look-ups without storing emails as keys.
            "customer_hash_key": old_secrets.get("customer_hash_key") or os.urandom(32).hex(),
            "widget_secret": old_secrets.get("widget_secret") if keep_widget else new_widget,
        }
        attributes: dict[str, Any] = {
            "name": profile.name,
            "shop_domain": profile.shop_domain,
            "credit_provider": profile.credit_provider,
            "currency": profile.currency,
            "max_credit_amount": profile.max_credit_amount,
            "secrets": self._box.seal(secrets, store_id=store_id, purpose=STORE_SECRETS_PURPOSE),
            "widget_secret_masked": mask_secret(secrets["widget_secret"]) if secrets["widget_secret"] else None,
            "created_at": existing["created_at"] if existing else now_iso(),
            "updated_at": now_iso(),
        }
        if profile.webhook_secrets is not None:
            raw = [s.get_secret_value() for s in profile.webhook_secrets]
            attributes["webhook_secret_digests"] = [secret_digest(s) for s in raw]
            attributes["webhook_secrets_masked"] = [mask_secret(s) for s in raw]
        else:
            assert existing is not None
            attributes["webhook_secret_digests"] = existing["webhook_secret_digests"]
            attributes["webhook_secrets_masked"] = existing["webhook_secrets_masked"]
        try:
            self._store.put_store_profile(store_id, attributes, was=existing)
        except ConditionFailedError:
            raise ConflictError(
                f"store {store_id} changed while this was saved: read it again; nothing was saved"
            ) from None
        if existing is not None and asked_cap:
            # A cap the caller set (raised or removed) re-drives what the old one held; one a PUT merely left out
            # does not: held money is released only by asking for it.
            cap, _ = self._limits.cap_for({"max_credit_amount": profile.max_credit_amount})
            self._sweeper.repaired(store_id, "cap", cap=cap)
        logger.info("store profile saved", store_id=store_id, is_new=existing is None)
        return _public_profile(store_id, attributes), existing is None

    def get_store(self, store_id: str) -> dict[str, Any]:
        check_store_id(store_id)
        item = self._store.get_store_profile(store_id)
        if item is None:
            raise ResourceNotFoundError(f"store {store_id} not found")
        return _public_profile(store_id, item)

    # -- integrations --------------------------------------------------------------------------------------------

    def put_integration(
        self, name: str, store_id: str, body: Any, *, partial: bool = False
    ) -> tuple[dict[str, Any], bool]:
        """Save an integration's settings: PUT replaces them (every secret field required), PATCH (``partial``)
        changes only the fields it names, secrets too."""
        model = _integration_model(name)
        check_store_id(store_id)
        if self._store.get_store_profile(store_id) is None:
            raise ResourceNotFoundError(f"store {store_id} not found: create its profile first")
        existing = self._store.get_integration(store_id, name)
        if partial:
            if existing is None:
                raise ResourceNotFoundError(f"{name} is not configured for store {store_id}: configure it with PUT")
            if not isinstance(body, dict):
                raise invalid("body", "must be a JSON object")
            body = {**existing.get("settings", {}), **body}
        try:
            settings = model.model_validate(body)
        except ValidationError as error:
            raise problems_from_validation(error) from error

        secrets = settings.secrets()
        if partial and existing is not None:
            old = self._box.open(existing["secrets"], store_id=store_id, purpose=_integration_purpose(name))
            secrets = {**old, **secrets}
        missing = [field for field in model.secret_fields if field not in secrets]
        if missing:
            raise invalid(missing[0], "required: PUT replaces the integration's settings (PATCH changes some fields)")

        if isinstance(settings, RichpanelSettings):
            self._check_richpanel_key(secrets["api_key"])

        attributes = {
            "settings": settings.public_fields(),
            "secrets": self._box.seal(secrets, store_id=store_id, purpose=_integration_purpose(name)),
            "secrets_masked": {field: mask_secret(value) for field, value in secrets.items()},
            "status": "valid",
            "status_reason": "",
            "status_checked_at": now_iso(),
            # Listed by integration (StateIndex), so the hourly health check finds every store that has it.
            "store_state": f"INTEGRATION#{name}",
            "state_since": store_id,
            "created_at": existing["created_at"] if existing else now_iso(),
            "updated_at": now_iso(),
        }
        try:
            self._store.put_integration(store_id, name, attributes, was=existing)
        except ConditionFailedError:
            raise ConflictError(
                f"{name} for store {store_id} changed while this was saved: read it again; nothing was saved"
            ) from None
        self.redrive_repaired(store_id, name)
        logger.info("integration saved", store_id=store_id, integration=name, is_new=existing is None)
        return _public_integration(name, store_id, attributes), existing is None

    def get_integration(self, name: str, store_id: str) -> dict[str, Any]:
        _integration_model(name)
        check_store_id(store_id)
        item = self._store.get_integration(store_id, name)
        if item is None:
            raise ResourceNotFoundError(f"{name} is not configured for store {store_id}")
        public = _public_integration(name, store_id, item)
        if name == "postco":
            public["sync"] = sync_state(self._store, store_id, time.time())
        return public

    def delete_integration(self, name: str, store_id: str) -> None:
        _integration_model(name)
        check_store_id(store_id)
        if not self._store.delete_integration(store_id, name):
            raise ResourceNotFoundError(f"{name} is not configured for store {store_id}")
        logger.info("integration deleted", store_id=store_id, integration=name)

    def integration_secrets(self, name: str, store_id: str) -> dict[str, Any]:
        item = self._store.get_integration(store_id, name)
        if item is None:
            raise ResourceNotFoundError(f"{name} is not configured for store {store_id}")
        return self._box.open(item["secrets"], store_id=store_id, purpose=_integration_purpose(name))

    def list_richpanel_teams(self, store_id: str) -> list[Team]:
        check_store_id(store_id)
        api_key = self.integration_secrets("richpanel", store_id)["api_key"]
        try:
            return self._richpanel(api_key).list_teams()
        except AuthError as error:
            self._store.set_integration_status(store_id, "richpanel", valid=False, reason="Richpanel refused the key")
            raise UnavailableError("Richpanel refused the stored API key; re-enter it") from error
        except IntegrationError as error:
            raise UnavailableError(f"Richpanel is unavailable: {error}") from error

    def get_claim(self, store_id: str, claim_id: str) -> dict[str, Any]:
        """The claim, its ticket, its ledger rows and its timeline of partner calls: one query of its partition."""
        check_store_id(store_id)
        check_id("claimId", claim_id)
        items = self._store.claim_partition(store_id, claim_id)
        claim = next((item for item in items if item["SK"] == "CLAIM"), None)
        if claim is None:
            raise ResourceNotFoundError(f"claim {claim_id} not found for store {store_id}")
        hidden = {"PK", "SK", "GSI1PK", "GSI1SK", "ticket_lock", "ticket_lock_until"}
        return {
            "claim": {k: v for k, v in claim.items() if k not in hidden and not k.startswith("ticket_")},
            "ticket": {
                "id": claim.get("ticket_id"),
                "opened_at": claim.get("ticket_opened_at"),
                "snoozed_at": claim.get("ticket_snoozed_at"),
            },
            "ledger": [public_ledger_row(i) for i in items if i["SK"].startswith("LEDGER#")],
            "reports": [public_report(i) for i in items if i["SK"].startswith("REPORT#")],
            "timeline": [
                {k: v for k, v in item.items() if k not in ("PK", "SK")}
                for item in items
                if item["SK"].startswith("TL#")
            ],
        }

    # -- money ---------------------------------------------------------------------------------------------------

    def bonus_credit(self, store_id: str, body: Any) -> tuple[dict[str, Any], bool]:
        """Queue a bonus store credit, once per (order, reason); return its ledger row and whether it is new."""
        check_store_id(store_id)
        try:
            bonus = BonusCreditIn.model_validate(body)
        except ValidationError as error:
            raise problems_from_validation(error) from error
        info = self._directory.store(store_id)
        if info is None:
            raise ResourceNotFoundError(f"store {store_id} not found")
        currency = bonus.currency or info.profile.get("currency", "USD")
        try:
            amount = parse_amount(bonus.amount, currency)
        except MoneyError as error:
            raise invalid("amount", str(error)) from None
        cap, whose = self._limits.cap_for(info.profile)
        if cap is not None and amount > cap:
            raise invalid("amount", f"{amount} is over {whose} of {cap:.2f}; nothing was queued")
        pk, sk = f"STORE#{store_id}#BONUS#{bonus.order_number}", f"LEDGER#bonus#{reason_slug(bonus.reason)}"
        # A repeat of a bonus already asked for takes no more of today's room; a new one reserves its amount first.
        reservation = None
        if self._ledger.get(pk, sk) is None:
            reservation = self._budget.reserve(store_id, amount)
            if reservation is None:
                used = self._budget.used_today(store_id)
                raise invalid(
                    "amount",
                    f"{amount} would take this store's bonus credits today past the daily limit of "
                    f"{self._limits.bonus_daily:.2f} ({used:.2f} used); nothing was queued",
                )
        asked = new_row(
            info,
            pk=pk,
            sk=sk,
            kind="bonus_credit",
            amount=amount,
            currency=currency,
            order_id=bonus.order_id,
            order_number=bonus.order_number,
            customer_email=bonus.customer.email,
            customer_name=bonus.customer.name or None,
            customer_id=bonus.customer.id,
            reason=bonus.reason,
        )
        row, created = self._ledger.create(asked)
        if reservation is not None and not created:  # another request created it first: its reservation stands
            self._budget.release(reservation)
        if not created and Decimal(str(row["amount"])) != amount:
            raise invalid(
                "amount",
                f"a bonus for order {bonus.order_number} and reason {bonus.reason!r} "
                f"exists with amount {row['amount']}; nothing was queued",
            )
        if self._enqueue_credit is None:
            raise UnavailableError("credits cannot be queued here")
        if row["state"] != "QUEUED":
            return public_ledger_row(row), False
        try:
            self._enqueue_credit(CreditJob(store_id=store_id, pk=pk, sk=sk))
        except Exception as error:  # the row must not block the caller's retry
            if created:
                try:
                    self._store.delete(
                        pk,
                        sk,
                        condition="#state = :queued AND version = :one",
                        names={"#state": "state"},
                        values={":queued": "QUEUED", ":one": 1},
                    )
                except ConditionFailedError:
                    # The send failed as seen from here, yet a worker already took the row: it was queued.
                    logger.info("bonus credit queued despite a send error", store_id=store_id, ledger=row["ledger_id"])
                    return public_ledger_row(row), True
                if reservation is not None:
                    self._budget.release(reservation)
            raise UnavailableError("could not queue the credit; nothing was queued, retry") from error
        logger.info("bonus credit queued", store_id=store_id, ledger=row["ledger_id"], is_new=created)
        return public_ledger_row(row), created

    def redrive_repaired(self, store_id: str, name: str) -> int:
        """An integration saved (or found valid again): what it held or skipped goes again, now."""
        if name in REPAIRS:
            return self._sweeper.repaired(store_id, name)
        if name == "postco" and self._enqueue_sync is not None:  # what the schedule skipped is found by a sync
            self._enqueue_sync(store_id, "repaired")
            return 1
        if name == "richpanel" and self._enqueue_claim is not None:
            claims = self.skipped_claims(store_id)
            for claim_id in claims:
                self._enqueue_claim(store_id, claim_id)
            return len(claims)
        return 0

    def skipped_claims(self, store_id: str) -> list[str]:
        found: list[str] = []
        cursor: str | None = None
        while True:
            items, cursor = self._store.query_index(
                "StateIndex", "store_state", f"{store_id}#{TICKET_SKIPPED}", limit=100, after=cursor
            )
            found.extend(str(item["claim_id"]) for item in items)
            if not cursor:
                return found

    # -- the operator's loop -------------------------------------------------------------------------------------

    def ledger_rows(self, store_id: str, state: str | None, cursor: str | None) -> dict[str, Any]:
        """A store's rows that need a person (HELD, UNKNOWN or FAILED), oldest first, with reasons and evidence."""
        check_store_id(store_id)
        if state not in OPERATOR_STATES:
            raise invalid("state", f"must be one of {', '.join(OPERATOR_STATES)}")
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            rows, following = self._ledger.in_state(store_id, State(state), limit=50, after=cursor or None)
        except (ValueError, KeyError, TypeError, BotoCoreError, ClientError) as error:
            raise invalid("cursor", "not a cursor this API gave for this store and state") from error
        return {"rows": [public_ledger_row(row) for row in rows], "next_cursor": following or None}

    def ledger_action(self, store_id: str, entry_id: str, body: Any, who: str) -> dict[str, Any]:
        """An operator's decision on one row, audited on it (who, when, why, before and after); 409 when the row's
        state does not allow it."""
        check_store_id(store_id)
        try:
            action = LedgerActionIn.model_validate(body)
        except ValidationError as error:
            raise problems_from_validation(error) from error
        row = self._ledger_row(store_id, entry_id)
        outcome = Outcome(action.action)
        if (State(row["state"]), outcome) not in TRANSITIONS:
            raise ConflictError(f"{action.action} is not allowed while the credit is {row['state']}")
        fields: dict[str, Any] = {}
        if outcome == Outcome.MARK_ISSUED:
            fields = {"card_id": action.card_id, "card_type": "marked_by_operator", "hold_code": None}
        audit = {
            "who": who,
            "action": action.action,
            "why": action.reason,
            **({"card_id": action.card_id} if action.card_id else {}),
        }
        try:
            moved = self._ledger.move(
                row, outcome, reason=f"{action.action} by {who}: {action.reason}", fields=fields, audit=audit
            )
        except LostRaceError:
            raise ConflictError("the credit changed meanwhile; read it again") from None
        if outcome == Outcome.RETRY and self._enqueue_credit is not None:
            self._enqueue_credit(CreditJob(store_id=store_id, pk=row["PK"], sk=row["SK"]))
        if outcome == Outcome.MARK_ISSUED:
            follow_up(
                moved, ledger=self._ledger, enqueue_report=self._enqueue_report, enqueue_credit=self._enqueue_credit
            )
        logger.info("ledger action", store_id=store_id, ledger=entry_id, action=action.action, who=who)
        return public_ledger_row(moved)

    def _ledger_row(self, store_id: str, entry_id: str) -> dict[str, Any]:
        check_id("entryId", entry_id, limit=300)
        parts = entry_id.split(":")
        shapes = {"claim": 4, "bonus": 4, "postco": 3, "rivo": 3}  # see claimbridge.ledger.ledger_id
        if len(parts) < 3 or shapes.get(parts[0]) != len(parts):
            raise ResourceNotFoundError(f"no ledger entry {entry_id}")
        kind, subject, *rest = parts
        if kind == "rivo":  # rivo:<store>:<key>
            if subject != store_id:
                raise ResourceNotFoundError(f"no ledger entry {entry_id}")
            subject, rest = rest[0], ["action"]
        row = self._store.get(f"STORE#{store_id}#{kind.upper()}#{subject}", "LEDGER#" + "#".join(rest))
        if row is None:
            raise ResourceNotFoundError(f"no ledger entry {entry_id}")
        return row

    def widget_url(self, store_id: str, body: Any, base_url: str, now: float) -> dict[str, Any]:
        """A signed widget URL for one customer, by email or (for a customer known only by phone) by phone, valid for
        the widget's 300 s skew window."""
        check_store_id(store_id)
        if not isinstance(body, dict):
            raise invalid("body", "must be {customer_email} or {customer_phone}")
        if set(body) - {"customer_email", "customer_phone"}:
            raise invalid(sorted(set(body) - {"customer_email", "customer_phone"})[0], "unknown field")
        email, phone = body.get("customer_email"), body.get("customer_phone")
        if email is None and phone is not None:
            number = phone_number(phone) if isinstance(phone, str) else None
            if number is None:
                raise invalid("customer_phone", "must be a phone number such as +15550100 (6 to 15 digits)")
            customer, by = number, "customer_phone"
        elif not isinstance(email, str) or not is_email(email.strip().lower()):
            raise invalid("customer_email", "must be an email address such as ann@example.com")
        else:
            customer, by = email.strip().lower(), "customer_email"
        info = self._directory.store(store_id)
        if info is None:
            raise ResourceNotFoundError(f"store {store_id} not found")
        secret = info.secrets.get("widget_secret")
        if not secret:
            raise invalid("widget_secret", "the store has no widget secret: set one on the store profile first")
        query = signed_query(secret, store_id, customer, now, by=by)
        return {"url": widget_url(base_url, store_id, query), "expires_at": int(query["timestamp"]) + MAX_SKEW_S}

    def ledger_entry(self, store_id: str, entry_id: str) -> dict[str, Any]:
        check_store_id(store_id)
        return public_ledger_row(self._ledger_row(store_id, entry_id))

    def _check_richpanel_key(self, api_key: str) -> None:
        try:
            self._richpanel(api_key).list_teams()
        except AuthError as error:
            raise invalid("api_key", "Richpanel refused this key (GET /v1/teams answered 401)") from error
        except IntegrationError as error:
            raise UnavailableError(f"could not check the key with Richpanel: {error}; nothing was saved") from error


def _integration_model(name: str) -> type[IntegrationSettings]:
    try:
        return INTEGRATIONS[name]
    except KeyError:
        raise ResourceNotFoundError(f"unknown integration {name!r}; known: {', '.join(INTEGRATIONS)}") from None


def _public_profile(store_id: str, item: dict[str, Any]) -> dict[str, Any]:
    cap = item.get("max_credit_amount")
    return {
        "store_id": store_id,
        "name": item["name"],
        "shop_domain": item["shop_domain"],
        "webhook_secrets": item["webhook_secrets_masked"],
        "widget_secret": item.get("widget_secret_masked"),
        "credit_provider": item["credit_provider"],
        "currency": item["currency"],
        "max_credit_amount": f"{cap:.2f}" if cap is not None else None,
        "created_at": item["created_at"],
        "updated_at": item["updated_at"],
    }


def _public_integration(name: str, store_id: str, item: dict[str, Any]) -> dict[str, Any]:
    return {
        "integration": name,
        "store_id": store_id,
        **item["settings"],
        **item["secrets_masked"],
        "status": {
            "state": item.get("status", "valid"),
            "reason": item.get("status_reason") or None,
            "checked_at": item.get("status_checked_at"),
        },
        "created_at": item["created_at"],
        "updated_at": item["updated_at"],
    }
