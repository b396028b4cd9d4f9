import pytest

from claimbridge.config import ConfigError, Settings


def test_settings_read_the_environment_and_default_the_partners_to_the_real_ones():
    settings = Settings.from_environ({"TABLE_NAME": "t", "KMS_KEY_ID": "k"})

    assert settings.table_name == "t"
    assert settings.richpanel_api_base_url == "https://api.richpanel.com"
    assert settings.rise_api_base_url == "https://application.rise-ai.com"
    assert "{claim_id}" in settings.dashboard_claim_url_template


def test_a_partner_base_url_from_the_environment_wins_and_loses_its_trailing_slash():
    settings = Settings.from_environ({"RISE_API_BASE_URL": "http://127.0.0.1:9999/"})

    assert settings.rise_api_base_url == "http://127.0.0.1:9999"


def test_require_names_every_missing_variable():
    settings = Settings.from_environ({"TABLE_NAME": "t"})

    with pytest.raises(ConfigError) as error:
        settings.require("table_name", "kms_key_id", "richpanel_queue_url")

    assert "KMS_KEY_ID" in str(error.value)
    assert "RICHPANEL_QUEUE_URL" in str(error.value)
    assert "TABLE_NAME" not in str(error.value)


def test_a_malformed_variable_fails_loudly_with_its_name():
    with pytest.raises(ConfigError, match="RICHPANEL_API_BASE_URL"):
        Settings.from_environ({"RICHPANEL_API_BASE_URL": "ftp://nope"})

    with pytest.raises(ConfigError, match="DASHBOARD_CLAIM_URL_TEMPLATE"):
        Settings.from_environ({"DASHBOARD_CLAIM_URL_TEMPLATE": "https://dash/claims/"})
