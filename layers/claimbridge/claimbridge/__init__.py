"""claimbridge: the integration back end of the Order Protection claims platform (shared Lambda layer)."""
