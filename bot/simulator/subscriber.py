"""What the fake platform knows of each subscriber, and what each of their activities changes.

The driver reports what a simulated subscriber did (:meth:`~bot.simulator.platform.Platform.record`
with one of :data:`ACTIVITIES`), as WeChat knows it; the platform's rules read the record: whether
they follow, their customer-service windows, their mass sends this month, their tags.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bot import subscribers
from bot.simulator.errors import refused

ACTIVITIES = (*subscribers.ACTIVITIES, "unfollow", "view", "location", "block", "unblock",
              "refuse_templates", "accept_templates")
"""What :meth:`Platform.record <bot.simulator.platform.Platform.record>` accepts: what the bot
records of a subscriber, and what only the platform sees."""


@dataclass
class Subscriber:
    """What the platform knows of one simulated subscriber."""

    openid: str
    name: str = ""
    following: bool = False
    blocked: bool = False
    refuses_templates: bool = False
    message_at: float | None = None
    message_sends: int = 0
    event_at: float | None = None
    event_sends: int = 0
    mass_by_month: dict[str, int] = field(default_factory=dict)
    tags: list[int] = field(default_factory=list)

    def note(self, kind: str, at: float) -> None:
        """What doing ``kind`` (one of :data:`ACTIVITIES`) at ``at`` changes: following, the
        customer-service windows (a message opens one, a follow, scan or click the other; an
        unfollow closes both), blocking, refusing templates."""
        if kind in ("follow", "unfollow"):
            self.following = kind == "follow"
        if kind == "unfollow":
            self.message_at = self.event_at = None
        elif kind == "message":
            self.message_at, self.message_sends = at, 0
        elif kind in ("follow", "scan", "click"):
            self.event_at, self.event_sends = at, 0
        elif kind in ("block", "unblock"):
            self.blocked = kind == "block"
        elif kind in ("refuse_templates", "accept_templates"):
            self.refuses_templates = kind == "refuse_templates"


def follower(known: dict[str, Subscriber], openid: Any) -> Subscriber:
    """The subscriber ``openid`` among ``known`` if they follow: 40003 for an unknown openid, 43004
    for one that does not follow (what one-to-one sends answer)."""
    sub = known.get(openid) if isinstance(openid, str) else None
    if sub is None:
        raise refused(40003)
    if not sub.following:
        raise refused(43004)
    return sub
