"""Integration health, on a schedule: each configured integration's key checked with its partner's cheapest read.

A key the partner refuses marks the integration ``invalid`` with the reason (its jobs are then skipped, without calls);
one accepted again is ``valid`` again, and what was skipped or held while it was invalid is re-driven at once. A
partner that is down tells nothing about the key: the status stays as it was.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from claimbridge.clients.http import AuthError, IntegrationError
from claimbridge.clients.rise import StoreDomainNotFoundError
from claimbridge.directory import StoreDirectory, StoreInfo
from claimbridge.observability import logger, metrics
from claimbridge.store import Store

Check = Callable[[StoreInfo, dict[str, Any]], object]  # raises AuthError when the partner refuses the key


class IntegrationHealth:
    def __init__(
        self,
        *,
        store: Store,
        directory: StoreDirectory,
        checks: Mapping[str, Check],
        valid_again: Callable[[str, str], int],
    ) -> None:
        self._store = store
        self._directory = directory
        self._checks = checks
        self._valid_again = valid_again

    def run(self) -> dict[str, int]:
        totals = {"checked": 0, "valid": 0, "invalid": 0, "unreachable": 0, "redriven": 0}
        for name, check in self._checks.items():
            cursor: str | None = None
            while True:
                items, cursor = self._store.query_index(
                    "StateIndex", "store_state", f"INTEGRATION#{name}", limit=100, after=cursor
                )
                for item in items:
                    outcome, redriven = self._check(name, check, item)
                    totals["checked"] += 1
                    totals[outcome] += 1
                    totals["redriven"] += redriven
                if not cursor:
                    break
        metrics.add_metric(name="IntegrationsInvalid", unit="Count", value=totals["invalid"])
        logger.info("integration health", totals=totals)
        return totals

    def _check(self, name: str, check: Check, item: dict[str, Any]) -> tuple[str, int]:
        store_id = item["store_id"]
        was_valid = item.get("status", "valid") != "invalid"
        info, integration = self._directory.store(store_id), self._directory.integration(store_id, name)
        if info is None or integration is None:
            return "unreachable", 0
        try:
            check(info, integration.secrets)
        except (AuthError, StoreDomainNotFoundError) as error:
            self._directory.mark_invalid(store_id, name, f"{name} refused the key at the health check: {error}")
            logger.warning("integration invalid", store_id=store_id, integration=name)
            return "invalid", 0
        except IntegrationError as error:
            logger.info(
                "integration unreachable; status unchanged", store_id=store_id, integration=name, error=str(error)
            )
            return "unreachable", 0
        self._store.set_integration_status(store_id, name, valid=True, reason=None)
        if was_valid:
            return "valid", 0
        logger.info("integration valid again", store_id=store_id, integration=name)
        return "valid", self._valid_again(store_id, name)
