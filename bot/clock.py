"""The one source of time for rule code: real by default, settable for tests and simulations.

Nothing that decides (dedup windows, timestamps, pushes) calls ``time.time()`` directly; it asks
``clock.now()``. A simulation replays a month in minutes by installing a :class:`VirtualClock`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field


class SystemClock:
    """Wall-clock time."""

    def now(self) -> float:
        """Seconds since the epoch."""
        return time.time()


@dataclass
class VirtualClock:
    """Time that starts at ``start`` and runs ``speed`` times faster than the wall clock.

    ``speed=0`` freezes it; :meth:`advance` moves it by hand.
    """

    start: float
    speed: float = 1.0
    _origin: float = field(default_factory=time.monotonic)
    _offset: float = 0.0

    def now(self) -> float:
        """Seconds since the epoch in virtual time."""
        return self.start + self._offset + (time.monotonic() - self._origin) * self.speed

    def advance(self, seconds: float) -> None:
        """Jump forward by ``seconds``."""
        self._offset += seconds


_clock: SystemClock | VirtualClock = SystemClock()


def now() -> float:
    """Current time in seconds from the installed clock."""
    return _clock.now()


def install(clock: SystemClock | VirtualClock) -> None:
    """Make ``clock`` the source of time for this process."""
    global _clock
    _clock = clock


def reset() -> None:
    """Go back to wall-clock time."""
    install(SystemClock())
