import pytest
from pydantic import ValidationError

from claimbridge.models.settings import PostcoSettings, RichpanelSettings, StoreProfileIn

GOOD_STORE = {"name": "Acme", "shop_domain": "acme.myshopify.com", "webhook_secrets": ["s" * 20]}


def fields_of(error: ValidationError) -> set[str]:
    return {".".join(str(p) for p in e["loc"]) for e in error.errors()}


def test_a_good_store_profile_is_accepted_with_defaults():
    profile = StoreProfileIn.model_validate(GOOD_STORE)

    assert profile.credit_provider == "rise"
    assert profile.currency == "USD"
    assert "s" * 20 not in repr(profile)  # secrets never print


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"shop_domain": "acme.com"}, "shop_domain"),
        ({"webhook_secrets": []}, "webhook_secrets"),
        ({"webhook_secrets": ["a", "b", "c"]}, "webhook_secrets"),
        ({"webhook_secrets": ["short"]}, "webhook_secrets"),
        ({"credit_provider": "paypal"}, "credit_provider"),
        ({"currency": "usd"}, "currency"),
        ({"max_credit_amount": "-5"}, "max_credit_amount"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_a_bad_store_field_is_named(patch, field):
    with pytest.raises(ValidationError) as error:
        StoreProfileIn.model_validate({**GOOD_STORE, **patch})

    assert field in fields_of(error.value)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"api_key": "sk_nope12345"}, "api_key"),
        ({"api_key": "rp_ok_123456789", "default_team_id": "Claims team"}, "default_team_id"),
        ({"api_key": "rp_ok_123456789", "default_channel": "carrier-pigeon"}, "default_channel"),
        ({"api_key": "rp_ok_123456789", "extra": True}, "extra"),
    ],
)
def test_bad_richpanel_settings_are_named(body, field):
    with pytest.raises(ValidationError) as error:
        RichpanelSettings.model_validate(body)

    assert field in fields_of(error.value)


def test_richpanel_settings_keep_the_secret_apart_from_the_public_fields():
    settings = RichpanelSettings.model_validate(
        {"api_key": "rp_ok_123456789", "default_team_id": "6f1c1b7e-3a51-4a2b-9f0e-1d2c3b4a5f60"}
    )

    assert settings.secrets() == {"api_key": "rp_ok_123456789"}
    assert settings.public_fields() == {
        "default_team_id": "6f1c1b7e-3a51-4a2b-9f0e-1d2c3b4a5f60",
        "default_channel": "email",
    }


def test_a_percent_bonus_is_at_most_one_hundred():
    with pytest.raises(ValidationError):
        PostcoSettings.model_validate({"api_key": "sk_live_12345678", "bonus": {"type": "percent", "value": 150}})

    assert PostcoSettings.model_validate({"bonus": {"type": "fixed", "value": "150"}}).bonus is not None
