"""The PostCo queue's job: run one store's returns sync (claimbridge.returns)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, StringConstraints

from claimbridge.bounds import STORE_ID_PATTERN


class SyncJob(BaseModel):
    model_config = ConfigDict(extra="ignore")

    store_id: Annotated[str, StringConstraints(pattern=STORE_ID_PATTERN.pattern)]
    reason: Literal["schedule", "admin", "repaired"] = "schedule"
