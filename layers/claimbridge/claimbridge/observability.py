"""One place that creates the Logger and Metrics every function uses.

The Tracer is built on demand (``get_tracer``): importing it costs ~0.7 s of X-Ray SDK imports and patching, which the
webhook receivers must not pay on their 5 s budget. Workers and the admin API, off the hot path, use it.
"""

from __future__ import annotations

import warnings
from functools import lru_cache
from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger, Metrics

if TYPE_CHECKING:
    from aws_lambda_powertools import Tracer

SERVICE = "claimbridge"
NAMESPACE = "Claimbridge"

# A request that records no metric is normal (a 404, a duplicate webhook); Powertools warns about each one.
warnings.filterwarnings("ignore", message="No application metrics to publish")

logger = Logger(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)


@lru_cache(maxsize=1)
def get_tracer() -> Tracer:
    from aws_lambda_powertools import Tracer

    return Tracer(service=SERVICE)
