"""The admin API's bodies: a store's profile and each integration's settings.

Unknown fields are rejected; secrets are ``SecretStr`` (never printed) and write-only: a PUT that omits one keeps the
stored value, and reads show only the masked form. See shared/DESIGN.md "Public interface".
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, ClassVar, Literal, Optional
from uuid import UUID

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    create_model,
    field_validator,
    model_validator,
)

from claimbridge.models.fields import Email

SHOP_DOMAIN_PATTERN = r"^[a-z0-9][a-z0-9-]{0,60}\.myshopify\.com$"
RichpanelChannel = Literal[
    "email",
    "message",
    "twilio-sms",
    "attentive",
    "aircall",
    "facebook_message",
    "instagram",
    "facebook_feed_comment",
]

MAX_BACKFILL_DAYS = 365
Money = Annotated[Decimal, Field(gt=0, max_digits=12, decimal_places=2)]


class StrictBody(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class StoreProfileIn(StrictBody):
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    shop_domain: Annotated[str, StringConstraints(to_lower=True, pattern=SHOP_DOMAIN_PATTERN)]
    webhook_secrets: Annotated[list[SecretStr], Field(min_length=1, max_length=2)] | None = None
    widget_secret: SecretStr | None = None
    credit_provider: Literal["rise", "rivo"] = "rise"
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] = "USD"
    max_credit_amount: Money | None = None

    @field_validator("webhook_secrets")
    @classmethod
    def _strong_webhook_secrets(cls, secrets: list[SecretStr] | None) -> list[SecretStr] | None:
        for secret in secrets or []:
            if not _visible_ascii(secret.get_secret_value(), least=16):
                raise ValueError("each webhook secret must be 16 to 512 visible ASCII characters (no spaces)")
        return secrets

    @field_validator("widget_secret")
    @classmethod
    def _strong_widget_secret(cls, secret: SecretStr | None) -> SecretStr | None:
        if secret is not None and not _visible_ascii(secret.get_secret_value(), least=16):
            raise ValueError("must be 16 to 512 visible ASCII characters (no spaces)")
        return secret


class IntegrationSettings(StrictBody):
    """Base of the five integrations' settings. ``secret_fields`` are sealed with KMS; the rest is stored plainly."""

    secret_fields: ClassVar[tuple[str, ...]] = ()

    def public_fields(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude=set(self.secret_fields))

    def secrets(self) -> dict[str, str]:
        return {
            name: value.get_secret_value()
            for name in self.secret_fields
            if isinstance(value := getattr(self, name), SecretStr)
        }


class RichpanelSettings(IntegrationSettings):
    secret_fields: ClassVar[tuple[str, ...]] = ("api_key",)

    api_key: Annotated[SecretStr, Field()] | None = None
    default_team_id: UUID | None = None
    default_channel: RichpanelChannel = "email"

    @field_validator("api_key")
    @classmethod
    def _richpanel_key_form(cls, key: SecretStr | None) -> SecretStr | None:
        if key is not None and not re.fullmatch(r"rp_[A-Za-z0-9_\-]{8,200}", key.get_secret_value()):
            raise ValueError("must be a Richpanel API key: rp_ followed by at least 8 letters or digits")
        return key

    @field_validator("default_team_id", mode="before")
    @classmethod
    def _team_is_uuid(cls, value: Any) -> Any:
        if isinstance(value, str) and value and not _is_uuid(value):
            raise ValueError("must be the team's UUID, not its name (Richpanel ignores a team name silently)")
        return value or None


class RiseSettings(IntegrationSettings):
    secret_fields: ClassVar[tuple[str, ...]] = ("credit_api_token",)

    credit_api_token: SecretStr | None = None

    @field_validator("credit_api_token")
    @classmethod
    def _token_form(cls, token: SecretStr | None) -> SecretStr | None:
        return _check_token(token)


class RivoSettings(IntegrationSettings):
    secret_fields: ClassVar[tuple[str, ...]] = ("api_key",)

    api_key: SecretStr | None = None

    @field_validator("api_key")
    @classmethod
    def _key_form(cls, key: SecretStr | None) -> SecretStr | None:
        return _check_token(key)


class PostcoBonus(StrictBody):
    type: Literal["fixed", "percent"]
    value: Annotated[Decimal, Field(gt=0, max_digits=12, decimal_places=2)]

    @field_validator("value")
    @classmethod
    def _percent_in_range(cls, value: Decimal, info: Any) -> Decimal:
        if info.data.get("type") == "percent" and value > 100:
            raise ValueError("a percent bonus is at most 100")
        return value


class PostcoSettings(IntegrationSettings):
    secret_fields: ClassVar[tuple[str, ...]] = ("api_key",)

    api_key: SecretStr | None = None
    bonus: PostcoBonus | None = None
    # Returns submitted since this moment are credited too; without it, only those submitted after PostCo was
    # configured (history is never credited unasked).
    backfill_since: AwareDatetime | None = None

    @field_validator("backfill_since")
    @classmethod
    def _backfill_window(cls, since: datetime | None) -> datetime | None:
        if since is None:
            return None
        now = datetime.now(UTC)
        if since > now + timedelta(minutes=5):
            raise ValueError("must not be in the future")
        if since < now - timedelta(days=MAX_BACKFILL_DAYS):
            raise ValueError(f"must be within the last {MAX_BACKFILL_DAYS} days")
        return since.astimezone(UTC)

    @field_validator("api_key")
    @classmethod
    def _postco_key_form(cls, key: SecretStr | None) -> SecretStr | None:
        if key is not None and not re.fullmatch(r"sk_[A-Za-z0-9_\-]{8,200}", key.get_secret_value()):
            raise ValueError("must be a PostCo secret key: sk_ followed by at least 8 letters or digits")
        return key


class OrderProtectionSettings(IntegrationSettings):
    secret_fields: ClassVar[tuple[str, ...]] = ("api_token",)

    api_token: SecretStr | None = None

    @field_validator("api_token")
    @classmethod
    def _token_form(cls, token: SecretStr | None) -> SecretStr | None:
        return _check_token(token)


INTEGRATIONS: dict[str, type[IntegrationSettings]] = {
    "richpanel": RichpanelSettings,
    "rise": RiseSettings,
    "rivo": RivoSettings,
    "postco": PostcoSettings,
    "order_protection": OrderProtectionSettings,
}


def _is_uuid(value: str) -> bool:
    try:
        UUID(value)
    except ValueError:
        return False
    return True


VISIBLE_ASCII = re.compile(r"[\x21-\x7e]+")  # what an HTTP header carries as is: no spaces, controls or non-ASCII


def _visible_ascii(raw: str, *, least: int) -> bool:
    """``least`` to 512 characters an HTTP header carries as they are (secrets and tokens travel in headers)."""
    return least <= len(raw) <= 512 and VISIBLE_ASCII.fullmatch(raw) is not None


def _check_token(token: SecretStr | None) -> SecretStr | None:
    if token is not None and not _visible_ascii(token.get_secret_value(), least=8):
        raise ValueError("must be 8 to 512 visible ASCII characters (no spaces, control or non-ASCII characters)")
    return token


class WidgetUrlIn(StrictBody):
    """One customer: by email, or by phone for a customer known only by phone."""

    customer_email: Email | None = None
    customer_phone: (
        Annotated[str, StringConstraints(min_length=6, max_length=32, pattern=r"^\+?[0-9 ().-]+$")] | None
    ) = None

    @model_validator(mode="after")
    def _one(self) -> WidgetUrlIn:
        if (self.customer_email is None) == (self.customer_phone is None):
            raise ValueError("customer_email or customer_phone, one of them")
        return self


def partial(model: type[BaseModel]) -> type[BaseModel]:
    """``model`` with every field optional: a PATCH body's shape (the merged result is validated by ``model``)."""
    fields: dict[str, Any] = {
        name: (Optional[info.annotation], None)  # noqa: UP045 - built at run time from a type object
        for name, info in model.model_fields.items()
    }
    return create_model(f"{model.__name__}Patch", __base__=StrictBody, **fields)
