"""Real loopback stand-ins for services tests must never reach (Slack)."""
from .slack import FakeSlack, RecordedRequest

__all__ = ["FakeSlack", "RecordedRequest"]
