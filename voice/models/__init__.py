"""Voice models, one module per concern: call flows (flows.py) and calls/recordings (calls.py)."""

from .calls import Call, CallEvent, Recording
from .flows import CallFlow, CallFlowVersion

__all__ = ["Call", "CallEvent", "CallFlow", "CallFlowVersion", "Recording"]
