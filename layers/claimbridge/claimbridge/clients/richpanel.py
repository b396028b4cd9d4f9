"""Richpanel: open a ticket per claim, snooze it, list teams. Contract: shared/CONTRACTS.md "Richpanel"."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, model_validator

from claimbridge.clients.http import BadRequestError, HttpClient, IntegrationResponseError, NotFoundError


class Team(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str
    name: str = ""


class _TeamList(BaseModel):
    teams: list[Team]

    @model_validator(mode="before")
    @classmethod
    def _list_or_wrapped(cls, body: Any) -> Any:
        # Teams come as a bare list or under "teams" (CONTRACTS.md).
        return {"teams": body} if isinstance(body, list) else body


class _TicketAnswer(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _id_anywhere(cls, body: Any) -> Any:
        # The ticket id comes at ticket.id or id (CONTRACTS.md); ids may be numbers.
        if not isinstance(body, dict):
            return {"id": None}
        ticket = body.get("ticket")
        found = (ticket.get("id") if isinstance(ticket, dict) else None) or body.get("id")
        return {"id": str(found) if found not in (None, "") else None}


class RichpanelClient(HttpClient):
    partner = "richpanel"

    def __init__(self, *, api_key: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._api_key = api_key

    def _auth_headers(self) -> dict[str, str]:
        return {"x-richpanel-key": self._api_key}

    def list_teams(self) -> list[Team]:
        """The account's teams (also the key check: a refused key raises ``AuthError``)."""
        return self._parse(self._request("list_teams", "GET", "/v1/teams"), _TeamList).teams

    def create_ticket(self, ticket: dict[str, Any], *, ticket_id: str) -> str:
        """Open a ticket under our own ``ticket_id`` (``ticket`` is the inner object, wrapped as ``{"ticket": ...}``);
        return the ticket's id. Creation is idempotent (CONTRACTS.md "Richpanel"): a create refused because the id
        exists (409) means the ticket is there, and that is a success."""
        try:
            response = self._request(
                "create_ticket", "POST", "/v1/tickets", json={"ticket": {**ticket, "id": ticket_id}}
            )
        except BadRequestError as error:
            if error.status == 409:
                return ticket_id
            raise
        found = self._parse(response, _TicketAnswer).id
        if not found:
            raise IntegrationResponseError(
                "richpanel: ticket created without an id",
                partner=self.partner,
                status=response.status_code,
                body=response.text[:2000],
            )
        return found

    def ticket_exists(self, ticket_id: str) -> bool:
        """Whether a ticket with this id is there (``GET /v1/tickets/{id}``): how an uncertain create is settled."""
        try:
            self._request("get_ticket", "GET", f"/v1/tickets/{quote(ticket_id, safe='')}")
        except NotFoundError:
            return False
        return True

    def snooze_ticket(self, ticket_id: str) -> None:
        """Snooze until the customer replies: ``snoozed_till`` is the string "0" (seeds/004)."""
        self._request(
            "snooze_ticket", "PUT", f"/v1/tickets/{quote(ticket_id, safe='')}/snooze", json={"snoozed_till": "0"}
        )
