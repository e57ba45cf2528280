"""The fake platform's daily quotas: calls a calendar day per API, in the account's time zone.

A "day" is a calendar day in the account's time zone, read from the installed clock's time
(``bot.clock``) that callers pass in, so quotas follow virtual time. The token and tag rules
(:mod:`~bot.simulator.tokens`, :mod:`~bot.simulator.tags`) spend from one :class:`DailyQuotas`
the platform holds; callers hold the platform's lock.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from zoneinfo import ZoneInfo

from bot.simulator.errors import refused


class DailyQuotas:
    """Calls made today of each quota (a name such as ``"token"`` or ``"tags/create"``)."""

    def __init__(self, timezone: str) -> None:
        self.timezone = timezone
        self._calls: Counter[tuple[str, str]] = Counter()  # (quota, local day) -> calls

    def local(self, at: float) -> datetime:
        """The time ``at`` in the account's time zone."""
        return datetime.fromtimestamp(at, ZoneInfo(self.timezone))

    def spend(self, quota: str, limit: int, now: float) -> None:
        """Count one call against the daily quota ``quota``; 45009 once ``limit`` were made."""
        key = (quota, self.local(now).date().isoformat())
        if self._calls[key] >= limit:
            raise refused(45009)
        self._calls[key] += 1
