"""Collaborators built once per execution environment, from the settings; handlers may pass replacements.

Nothing here runs at import time: the first call builds, later calls reuse (Lambda keeps the process warm).
"""

from __future__ import annotations

from functools import cache, lru_cache
from typing import TYPE_CHECKING, Any

from claimbridge.config import get_settings
from claimbridge.store import Store

if TYPE_CHECKING:
    from claimbridge.directory import StoreDirectory


@cache
def aws_client(service: str) -> Any:
    import boto3
    from botocore.config import Config

    # Short timeouts and standard retries: a receiver must answer within Order Protection's 5 s.
    config = Config(connect_timeout=2, read_timeout=5, retries={"mode": "standard", "max_attempts": 3})
    return boto3.client(service, config=config)


@lru_cache(maxsize=1)
def table_store() -> Store:
    return Store(aws_client("dynamodb"), get_settings().require("table_name").table_name or "")


@lru_cache(maxsize=1)
def store_directory() -> StoreDirectory:
    """Stores' profiles and integrations with their secrets opened (KMS), cached for a couple of minutes."""
    from claimbridge.crypto import SecretBox
    from claimbridge.directory import StoreDirectory

    settings = get_settings().require("table_name", "kms_key_id")
    return StoreDirectory(store=table_store(), secret_box=SecretBox(aws_client("kms"), settings.kms_key_id or ""))
