"""Pydantic models: admin bodies and settings, webhooks, jobs, ledger."""
