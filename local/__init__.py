"""The local stack: template.yaml's resources on DynamoDB Local and moto, the API, pollers, schedules, the sandbox."""

import sys
from pathlib import Path

# The layer's package is importable here as it is in Lambda (where the layer is unpacked on /opt/python).
_LAYER = str(Path(__file__).resolve().parent.parent / "layers" / "claimbridge")
if _LAYER not in sys.path:
    sys.path.insert(0, _LAYER)
