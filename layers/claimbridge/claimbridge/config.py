"""The one settings model: the environment, read once and validated.

Handlers call ``get_settings().require(...)`` at cold start with the names they use, so a missing variable fails
loudly before the first request instead of in the middle of one.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import lru_cache

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

DEFAULT_DASHBOARD_CLAIM_URL_TEMPLATE = "https://dashboard.orderprotection.com/claims/{claim_id}"


class ConfigError(RuntimeError):
    """The environment lacks or mis-spells something this function needs."""


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    table_name: str | None = Field(default=None, alias="TABLE_NAME")
    idempotency_table_name: str | None = Field(default=None, alias="IDEMPOTENCY_TABLE_NAME")
    kms_key_id: str | None = Field(default=None, alias="KMS_KEY_ID")
    richpanel_queue_url: str | None = Field(default=None, alias="RICHPANEL_QUEUE_URL")
    credit_queue_url: str | None = Field(default=None, alias="CREDIT_QUEUE_URL")
    order_protection_queue_url: str | None = Field(default=None, alias="ORDER_PROTECTION_QUEUE_URL")
    dashboard_claim_url_template: str = Field(
        default=DEFAULT_DASHBOARD_CLAIM_URL_TEMPLATE, alias="DASHBOARD_CLAIM_URL_TEMPLATE"
    )
    richpanel_api_base_url: str = Field(default="https://api.richpanel.com", alias="RICHPANEL_API_BASE_URL")
    rise_api_base_url: str = Field(default="https://application.rise-ai.com", alias="RISE_API_BASE_URL")
    rivo_api_base_url: str = Field(default="https://developer-api.rivo.io/merchant_api/v1", alias="RIVO_API_BASE_URL")
    postco_api_base_url: str = Field(default="https://360.postco.co/api/public/v1", alias="POSTCO_API_BASE_URL")
    order_protection_api_base_url: str = Field(
        default="https://api.production.orderprotection.com", alias="ORDER_PROTECTION_API_BASE_URL"
    )

    @field_validator(
        "richpanel_api_base_url",
        "rise_api_base_url",
        "rivo_api_base_url",
        "postco_api_base_url",
        "order_protection_api_base_url",
    )
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("must be an http(s) URL")
        return value.rstrip("/")

    @field_validator("dashboard_claim_url_template")
    @classmethod
    def _has_claim_placeholder(cls, value: str) -> str:
        if "{claim_id}" not in value:
            raise ValueError("must contain {claim_id}")
        return value

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Settings:
        try:
            return cls.model_validate({k: v for k, v in environ.items() if v != ""})
        except ValidationError as error:
            # Locations are the variables' names (the fields' aliases).
            problems = "; ".join(f"{e['loc'][0]}: {e['msg']}" for e in error.errors() if e["loc"])
            raise ConfigError(f"invalid configuration: {problems}") from error

    def require(self, *names: str) -> Settings:
        """Fail with every missing variable named, or return self."""
        fields = type(self).model_fields
        missing = [fields[name].alias or name for name in names if getattr(self, name) in (None, "")]
        if missing:
            raise ConfigError(f"missing configuration: {', '.join(missing)}")
        return self


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings.from_environ(os.environ)
