"""The scenario's clock: virtual time whose jumps every process of the bot sees, through Redis."""

from __future__ import annotations

import redis

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
