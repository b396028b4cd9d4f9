"""What every edge checks before a look-up: ids bounded, emails a partner can be sent. No pydantic here: the webhook
receiver uses it and keeps its cold start light."""

from __future__ import annotations

import re

from claimbridge.errors import invalid

STORE_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$", re.ASCII)  # what the admin lets a store be named
MAX_ID_CHARS = 200  # any id we key a row by: well under DynamoDB's 2,048-byte partition key, with its prefix
MAX_EMAIL_CHARS = 254  # RFC 5321's path limit
# A mailbox as partners (Rise's recipient, Richpanel's sender) take it: dot-atom local part, a dotted host name. No
# spaces, quotes, angle brackets or line breaks: nothing that could add a header or a second recipient.
EMAIL_PATTERN = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}"
)


def is_store_id(value: str) -> bool:
    return STORE_ID_PATTERN.fullmatch(value) is not None


def is_email(value: str) -> bool:
    return len(value) <= MAX_EMAIL_CHARS and EMAIL_PATTERN.fullmatch(value) is not None


def is_printable(value: str) -> bool:
    """Text without control characters, line breaks or lone surrogates (which no log line or partner can carry)."""
    return value.isprintable()


def id_problem(name: str, value: object, *, limit: int = MAX_ID_CHARS) -> str | None:
    """What is wrong with an id from outside, or None: a non-empty printable string of at most ``limit`` characters."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value:
        return f"{name} must be a non-empty string"
    if len(value) > limit:
        return f"{name} must be at most {limit} characters"
    if not is_printable(value):
        return f"{name} must be printable text (no control characters, line breaks or lone surrogates)"
    return None


def check_store_id(store_id: str) -> str:
    """A store id from a path, or the 422 that names the rule."""
    if not is_store_id(store_id):
        raise invalid("storeId", "must be 1 to 64 letters, digits, '-' or '_'")
    return store_id


def check_id(name: str, value: str, *, limit: int = MAX_ID_CHARS) -> str:
    """An id from the path, bounded before it becomes a key (DynamoDB refuses keys over 2 KB with a 500)."""
    problem = id_problem(name, value, limit=limit)
    if problem is not None:
        raise invalid(name, problem.removeprefix(f"{name} "))
    return value
