"""Partner clients: one module per partner over one HTTP base (``http``). Wire facts: shared/CONTRACTS.md."""
