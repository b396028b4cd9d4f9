"""The one settings model: the environment, read once and validated.

Handlers call ``get_settings().require(...)`` at cold start with the names they use, so a missing variable fails
loudly before the first request instead of in the middle of one. It is a plain dataclass, not a pydantic model: the
webhook receivers read it, and importing pydantic (~0.2 s) would cost them a fifth of their cold-start budget.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from functools import lru_cache
from typing import Any

from claimbridge.limits import MoneyLimits, parse_limit

DEFAULT_DASHBOARD_CLAIM_URL_TEMPLATE = "https://dashboard.orderprotection.com/claims/{claim_id}"


class ConfigError(RuntimeError):
    """The environment lacks or mis-spells something this function needs."""


def _variable(name: str, default: str | None = None, *, url: bool = False) -> Any:
    return field(default=default, metadata={"env": name, "url": url})


@dataclass(frozen=True)
class Settings:
    table_name: str | None = _variable("TABLE_NAME")
    idempotency_table_name: str | None = _variable("IDEMPOTENCY_TABLE_NAME")
    kms_key_id: str | None = _variable("KMS_KEY_ID")
    richpanel_queue_url: str | None = _variable("RICHPANEL_QUEUE_URL")
    credit_queue_url: str | None = _variable("CREDIT_QUEUE_URL")
    order_protection_queue_url: str | None = _variable("ORDER_PROTECTION_QUEUE_URL")
    richpanel_dlq_url: str | None = _variable("RICHPANEL_DLQ_URL")
    credit_dlq_url: str | None = _variable("CREDIT_DLQ_URL")
    order_protection_dlq_url: str | None = _variable("ORDER_PROTECTION_DLQ_URL")
    postco_queue_url: str | None = _variable("POSTCO_QUEUE_URL")
    postco_dlq_url: str | None = _variable("POSTCO_DLQ_URL")
    job_max_receives: str = _variable("JOB_MAX_RECEIVES", "8")
    credit_customer_wait_s: str = _variable("CREDIT_CUSTOMER_WAIT_S", "86400")
    admin_auth: str = _variable("ADMIN_AUTH", "IAM")
    admin_bootstrap_key_digest: str = _variable("ADMIN_BOOTSTRAP_KEY_DIGEST", "")
    default_max_credit_amount: str = _variable("DEFAULT_MAX_CREDIT_AMOUNT", "500.00")
    bonus_daily_limit: str = _variable("BONUS_DAILY_LIMIT", "2000.00")
    dashboard_claim_url_template: str = _variable("DASHBOARD_CLAIM_URL_TEMPLATE", DEFAULT_DASHBOARD_CLAIM_URL_TEMPLATE)
    widget_frame_ancestors: str = _variable(
        "WIDGET_FRAME_ANCESTORS", "https://app.richpanel.com https://*.richpanel.com"
    )
    richpanel_api_base_url: str = _variable("RICHPANEL_API_BASE_URL", "https://api.richpanel.com", url=True)
    rise_api_base_url: str = _variable("RISE_API_BASE_URL", "https://application.rise-ai.com", url=True)
    rivo_api_base_url: str = _variable("RIVO_API_BASE_URL", "https://developer-api.rivo.io/merchant_api/v1", url=True)
    postco_api_base_url: str = _variable("POSTCO_API_BASE_URL", "https://360.postco.co/api/public/v1", url=True)
    order_protection_api_base_url: str = _variable(
        "ORDER_PROTECTION_API_BASE_URL", "https://api.production.orderprotection.com", url=True
    )

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Settings:
        values: dict[str, str] = {}
        problems: list[str] = []
        for spec in fields(cls):
            name = spec.metadata["env"]
            raw = environ.get(name, "")
            if raw == "":
                continue
            if spec.metadata["url"]:
                if not raw.startswith(("https://", "http://")):
                    problems.append(f"{name}: must be an http(s) URL")
                raw = raw.rstrip("/")
            values[spec.name] = raw
        template = values.get("dashboard_claim_url_template")
        if template is not None and "{claim_id}" not in template:
            problems.append("DASHBOARD_CLAIM_URL_TEMPLATE: must contain {claim_id}")
        for name, variable in (
            ("job_max_receives", "JOB_MAX_RECEIVES"),
            ("credit_customer_wait_s", "CREDIT_CUSTOMER_WAIT_S"),
        ):
            if name in values and not values[name].isdigit():
                problems.append(f"{variable}: must be a whole number")
        if values.get("admin_auth", "IAM") not in ("IAM", "KEYS"):
            problems.append("ADMIN_AUTH: must be IAM or KEYS")
        for name, variable in (
            ("default_max_credit_amount", "DEFAULT_MAX_CREDIT_AMOUNT"),
            ("bonus_daily_limit", "BONUS_DAILY_LIMIT"),
        ):
            try:
                parse_limit(values.get(name, ""))
            except ValueError as error:
                problems.append(f"{variable}: {error}")
        if problems:
            raise ConfigError("invalid configuration: " + "; ".join(problems))
        return cls(**values)

    def money_limits(self) -> MoneyLimits:
        return MoneyLimits(
            default_cap=parse_limit(self.default_max_credit_amount), bonus_daily=parse_limit(self.bonus_daily_limit)
        )

    def require(self, *names: str) -> Settings:
        """Fail with every missing variable named, or return self."""
        env = {spec.name: spec.metadata["env"] for spec in fields(self)}
        missing = [env[name] for name in names if not getattr(self, name)]
        if missing:
            raise ConfigError(f"missing configuration: {', '.join(missing)}")
        return self


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings.from_environ(os.environ)
