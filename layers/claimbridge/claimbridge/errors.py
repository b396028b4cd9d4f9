"""The domain's typed errors; handlers map them to HTTP answers in one place."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic import ValidationError


@dataclass(frozen=True)
class FieldProblem:
    field: str
    message: str


class DomainError(Exception):
    status = 400

    def body(self) -> dict[str, object]:
        return {"message": str(self)}

    def headers(self) -> dict[str, str]:
        """Headers the answer carries (``Retry-After``, ``Allow``)."""
        return {}


class ResourceNotFoundError(DomainError):
    status = 404


class InvalidRequestError(DomainError):
    """The request is well-formed JSON but a field is wrong: 422 naming each field."""

    status = 422

    def __init__(self, problems: list[FieldProblem]) -> None:
        super().__init__("; ".join(f"{p.field}: {p.message}" for p in problems))
        self.problems = problems

    def body(self) -> dict[str, object]:
        return {
            "message": f"invalid request: {self}",
            "errors": [{"field": p.field, "message": p.message} for p in self.problems],
        }


class ConflictError(DomainError):
    """The resource's state does not allow the request (an operator action on a row that moved on): 409."""

    status = 409


class UnavailableError(DomainError):
    """A partner we must consult is down; nothing was changed. 503."""

    status = 503


def invalid(field: str, message: str) -> InvalidRequestError:
    return InvalidRequestError([FieldProblem(field, message)])


def problems_from_validation(error: ValidationError) -> InvalidRequestError:
    return problems_from_errors(error.errors())


def problems_from_errors(errors: Sequence[Mapping[str, Any]], *, skip: int = 0) -> InvalidRequestError:
    """Pydantic's error list as our 422: each ``loc`` (less its first ``skip`` parts) as the field, dotted."""
    problems = [
        FieldProblem(".".join(str(part) for part in e["loc"][skip:]) or "body", _plain(str(e["msg"]))) for e in errors
    ]
    return InvalidRequestError(problems)


def _plain(message: str) -> str:
    return message.removeprefix("Value error, ")
