"""Pydantic field types built on claimbridge.bounds."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field, StringConstraints

from claimbridge.bounds import MAX_ID_CHARS, is_email, is_printable


def _email(value: str) -> str:
    value = value.strip().lower()
    if not is_email(value):
        raise ValueError("must be an email address such as ann@example.com")
    return value


def _printable(value: str) -> str:
    if not is_printable(value):
        raise ValueError("must be printable text (no control characters, line breaks or lone surrogates)")
    return value


Email = Annotated[str, AfterValidator(_email)]
BoundedId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_ID_CHARS),
    AfterValidator(_printable),
    Field(description="printable text (no control characters, line breaks or lone surrogates)"),
]
