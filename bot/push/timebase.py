"""One virtual time for every process of a simulation, through Redis.

The throttle reads the Redis server's clock plus ``Keys.clock_offset`` (absent in production, so
the offset is 0). A simulation installs a :class:`SharedClock` in its own process, which keeps
that offset equal to its virtual time minus the server's; every worker calls :func:`follow` at the
start of a job and so reads the same virtual time from ``bot.clock``.
"""

from __future__ import annotations

import time

import redis

from bot import clock
from bot.clock import VirtualClock
from bot.state import Keys


class SharedClock(VirtualClock):
    """A virtual clock running at wall speed whose jumps every process sees (through Redis)."""

    def __init__(self, r: redis.Redis, start: float) -> None:
        super().__init__(start=start, speed=1.0)
        self.redis = r
        self.publish()

    def advance(self, seconds: float) -> None:
        """Jump forward by ``seconds``, for this process, the throttle and the workers."""
        super().advance(seconds)
        self.publish()

    def publish(self) -> None:
        """Write the offset between this clock and the Redis server's clock."""
        seconds, micros = self.redis.time()
        self.redis.set(Keys.clock_offset(), repr(self.now() - (seconds + micros / 1e6)))


def server_now(r: redis.Redis) -> float:
    """The Redis server's clock plus the simulation offset: the throttle's time."""
    pipe = r.pipeline(transaction=False)
    pipe.time()
    pipe.get(Keys.clock_offset())
    (seconds, micros), offset = pipe.execute()
    return seconds + micros / 1e6 + float(offset or 0)


def follow(r: redis.Redis) -> None:
    """Make ``bot.clock`` of this process read the shared virtual time, when one is set."""
    if r.exists(Keys.clock_offset()):
        clock.install(VirtualClock(start=server_now(r), speed=1.0, _origin=time.monotonic()))
