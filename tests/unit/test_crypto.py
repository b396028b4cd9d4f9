import boto3
import pytest
from moto import mock_aws

from claimbridge.crypto import (
    DecryptionError,
    SecretBox,
    customer_key,
    mask_secret,
    matches_any_digest,
    secret_digest,
    sign_widget,
    widget_message,
)


@pytest.fixture
def box():
    with mock_aws():
        kms = boto3.client("kms", region_name="us-east-1")
        key_id = kms.create_key()["KeyMetadata"]["KeyId"]
        yield SecretBox(kms, key_id)


def test_a_sealed_secret_opens_for_its_own_store_and_shows_no_plaintext(box):
    sealed = box.seal({"api_key": "rp_supersecret123"}, store_id="store-a", purpose="integration:richpanel")

    assert "rp_supersecret123" not in sealed
    assert box.open(sealed, store_id="store-a", purpose="integration:richpanel") == {"api_key": "rp_supersecret123"}


def test_a_ciphertext_is_bound_to_its_store_another_stores_context_fails(box):
    sealed = box.seal({"api_key": "rp_supersecret123"}, store_id="store-a", purpose="integration:richpanel")

    with pytest.raises(DecryptionError):
        box.open(sealed, store_id="store-b", purpose="integration:richpanel")
    with pytest.raises(DecryptionError):
        box.open(sealed, store_id="store-a", purpose="integration:rise")


def test_a_tampered_or_malformed_envelope_fails(box):
    sealed = box.seal({"k": "v"}, store_id="s", purpose="p")
    tampered = sealed.replace('"c":"', '"c":"AAAA', 1)

    with pytest.raises(DecryptionError):
        box.open(tampered, store_id="s", purpose="p")
    with pytest.raises(DecryptionError):
        box.open("not json", store_id="s", purpose="p")


@pytest.mark.parametrize(
    ("secret", "masked"),
    [
        ("rp_live_abcdef123456", "rp_****3456"),
        ("sk_test_0123456789abcd", "sk_****abcd"),
        ("a-long-plain-token-9876", "****9876"),
        ("rp_short", "rp_****"),
        ("tiny", "****"),
    ],
)
def test_masking_shows_the_kind_and_the_last_four_at_most(secret, masked):
    assert mask_secret(secret) == masked


def test_webhook_secrets_are_kept_as_digests_and_any_active_one_matches():
    digests = [secret_digest("old-secret-0123456789"), secret_digest("new-secret-0123456789")]

    assert "old-secret" not in "".join(digests)
    assert matches_any_digest("old-secret-0123456789", digests)
    assert matches_any_digest("new-secret-0123456789", digests)
    assert not matches_any_digest("new-secret-012345678", digests)
    assert not matches_any_digest("", digests)


def test_the_widget_message_is_the_sorted_query_without_the_signature():
    params = {"timestamp": "1700000000", "customer_email": "a@b.co", "store_id": "s1", "signature": "x"}

    assert widget_message(params) == "customer_email=a@b.co&store_id=s1&timestamp=1700000000"
    assert sign_widget("k" * 16, params) == sign_widget("k" * 16, {**params, "signature": "other"})
    assert sign_widget("k" * 16, params) != sign_widget("k" * 16, {**params, "store_id": "s2"})


def test_customer_keys_ignore_case_and_depend_on_the_store_key():
    assert customer_key(b"1" * 32, " Ann@Example.com") == customer_key(b"1" * 32, "ann@example.com")
    assert customer_key(b"1" * 32, "ann@example.com") != customer_key(b"2" * 32, "ann@example.com")
    assert "ann" not in customer_key(b"1" * 32, "ann@example.com")
