"""Outbound network policy: where ombud may connect to."""

from ombud.net.outbound import Destination, OutboundPolicy

__all__ = ["Destination", "OutboundPolicy"]
