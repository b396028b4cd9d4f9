"""The partner sandbox: local HTTP servers that speak shared/CONTRACTS.md, with rate limits, errors and fault knobs.

Every server has a control surface under ``/__sandbox/``:
- ``GET /__sandbox/calls`` (``?path=`` prefix, ``?method=``) the record of every call received; ``DELETE`` clears it;
- ``PUT /__sandbox/faults`` ``{"error_rate", "error_status", "latency_ms", "timeout_rate", "hang_s", "script"}``,
  where ``script`` is a list of answers (``{"status", "headers", "body"}``) served, in order, before anything else;
- ``PUT /__sandbox/state`` merges seed data (orders, loyalty cards, keys); ``GET /__sandbox/state`` reads it;
- ``POST /__sandbox/reset`` forgets calls, faults and state.
"""
