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


ENV = "BOT_CLOCK"
"""Environment variable that puts every process of a run on one virtual clock.

Its value is ``<virtual epoch>@<wall epoch>x<speed>``: at wall-clock time ``wall epoch`` the
virtual time was ``virtual epoch``, and it runs ``speed`` times faster. Processes started at
different moments with the same value therefore agree on the time (:func:`share`).
"""


def parse_moment(text: str) -> float:
    """Seconds since the epoch of an ISO 8601 time with an offset (``ValueError`` if not)."""
    from datetime import datetime

    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not ISO 8601, e.g. 2026-01-05T09:00:00+08:00") from None
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} needs an offset, e.g. 2026-01-05T09:00:00+08:00")
    return moment.timestamp()


def share(start: float, speed: float = 1.0, wall: float | None = None) -> str:
    """The :data:`ENV` value for a virtual clock starting at ``start`` now (or at ``wall``)."""
    return f"{start:.3f}@{time.time() if wall is None else wall:.3f}x{speed:g}"


def from_shared(value: str) -> VirtualClock:
    """The clock a :data:`ENV` value describes; ``ValueError`` if it is malformed."""
    try:
        start_text, rest = value.split("@")
        wall_text, speed_text = rest.split("x")
        start, wall, speed = float(start_text), float(wall_text), float(speed_text)
    except ValueError:
        raise ValueError(
            f"{ENV} must look like <virtual epoch>@<wall epoch>x<speed>, not {value!r}"
        ) from None
    if speed < 0:
        raise ValueError(f"{ENV} speed must not be negative")
    elapsed = time.time() - wall
    return VirtualClock(start=start, speed=speed, _origin=time.monotonic() - elapsed)


def install_from_env(env: dict[str, str] | None = None) -> None:
    """Install the shared virtual clock when :data:`ENV` is set (every entry point calls this)."""
    import os

    value = (os.environ if env is None else env).get(ENV, "").strip()
    if value:
        install(from_shared(value))


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
