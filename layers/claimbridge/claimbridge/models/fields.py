"""Pydantic field types built on claimbridge.bounds."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator

from claimbridge.bounds import is_email


def _email(value: str) -> str:
    value = value.strip().lower()
    if not is_email(value):
        raise ValueError("must be an email address such as ann@example.com")
    return value


Email = Annotated[str, AfterValidator(_email)]
