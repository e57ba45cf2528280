"""One virtual time for every process of a simulation, through Redis.

The throttle reads the Redis server's clock plus ``Keys.clock_offset`` (absent in production, so
the offset is 0). Two ways set it:

- the simulator's scenario installs its ``SharedClock`` in its own
  process, which keeps that offset equal to its virtual time minus the server's; the bot's worker
  (:mod:`bot.worker`) calls :func:`follow` before every job, and the scheduler before every
  tick, so they read the same virtual time from ``bot.clock``;
- ``python -m bot run --now/--speed`` gives every process the same virtual clock through
  ``BOT_CLOCK`` (:mod:`bot.clock`); then :func:`publish` (called before every throttle script)
  writes the offset from this process's clock, which all processes agree on.
"""

from __future__ import annotations

import os
import time

import redis

from bot import clock
from bot.clock import VirtualClock
from bot.state.keys import Keys


def server_now(r: redis.Redis) -> float:
    """The Redis server's clock plus the simulation offset: the throttle's time."""
    pipe = r.pipeline(transaction=False)
    pipe.time()
    pipe.get(Keys.clock_offset())
    (seconds, micros), offset = pipe.execute()
    return seconds + micros / 1e6 + float(offset or 0)


def publish(r: redis.Redis) -> None:
    """Under ``BOT_CLOCK``, write the offset that puts the server's clock on this virtual time."""
    if os.environ.get(clock.ENV, "").strip():
        seconds, micros = r.time()
        r.set(Keys.clock_offset(), repr(clock.now() - (seconds + micros / 1e6)))


def follow(r: redis.Redis) -> None:
    """Make ``bot.clock`` of this process read the shared virtual time, when one is set."""
    if os.environ.get(clock.ENV, "").strip():
        return  # every process already has the run's clock (bot.clock.install_from_env)
    if r.exists(Keys.clock_offset()):
        clock.install(VirtualClock(start=server_now(r), speed=1.0, _origin=time.monotonic()))
