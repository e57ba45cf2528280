"""Redis writes recorded now and sent later, all in one command: one round trip, one reply.

:class:`Writes` has redis-py's command methods (``hset``, ``expire``, ``zincrby``...); each call
records the command instead of sending it. :meth:`Writes.send` runs the batch, in order, inside
one Lua script (:data:`APPLY`, a :class:`bot.state.scripts.Lua`): atomic, and one command to pack,
send and parse where a pipeline of N costs N of each. The webhook's claim
(:mod:`bot.inbound.delivery`) runs the same loop (:data:`APPLY_LOOP`) after its own check.

Each command's first argument is its key, declared to the script as such; a command over
several keys does not belong in a batch. A command that fails (a key of the wrong type) does not
stop the others: the failures are logged, as a pipeline's would be raised, after all have run.

One word is not Redis's: :data:`SKIP_IF_AFTER` (made by :func:`unless_after`) skips the commands
after it when its key holds a time later than its own. That is how writes made on behalf of an
earlier moment (a message that arrived before its sender unfollowed, and was handled after) give
way to what happened since, inside the same atomic batch.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import redis
from redis.commands.core import CoreCommands

from bot.state.scripts import Lua

log = logging.getLogger(__name__)

Command = tuple[Any, ...]
"""One Redis command as its words: name, key, arguments (e.g. ``("HSETNX", key, "f", "v")``)."""

SKIP_IF_AFTER = "SKIP-IF-AFTER"
"""The batch's own command ``SKIP-IF-AFTER key time n``: the next ``n`` commands are skipped when
``key`` holds a time (seconds since the epoch) later than ``time``."""

APPLY_LOOP = """
local function apply(key, at)
  local failed = {}
  local skip = 0
  for k = key, #KEYS do
    local count = tonumber(ARGV[at])
    local name = ARGV[at + 1]
    if skip > 0 then
      skip = skip - 1
    elseif name == '""" + SKIP_IF_AFTER + """' then
      local mark = redis.call('GET', KEYS[k])
      if mark and tonumber(mark) > tonumber(ARGV[at + 2]) then skip = tonumber(ARGV[at + 3]) end
    else
      local reply = redis.pcall(name, KEYS[k], unpack(ARGV, at + 2, at + 1 + count))
      if type(reply) == 'table' and reply.err then
        failed[#failed + 1] = name .. ' ' .. KEYS[k] .. ': ' .. tostring(reply.err)
      end
    end
    at = at + 2 + count
  end
  return failed
end
"""
"""``apply(key, at)`` runs the commands whose keys start at ``KEYS[key]`` and whose words start at
``ARGV[at]`` (for each: the count of its arguments, its name, the arguments), honouring
:data:`SKIP_IF_AFTER`; it returns the failures, as text."""

APPLY = Lua(APPLY_LOOP + "return apply(1, 1)\n")
"""Runs a whole batch (see :func:`script_words`); returns the failures."""


def unless_after(key: str, at: float, commands: Sequence[Command]) -> list[Command]:
    """``commands``, skipped in a batch when ``key`` holds a time later than ``at``."""
    if not commands:
        return []
    return [(SKIP_IF_AFTER, key, f"{at:.6f}", len(commands)), *commands]


class Writes(CoreCommands):
    """Commands recorded, not sent: redis-py's methods, with :meth:`send` for the batch.

    Given a ``fence`` (a key and a time), :meth:`close_fence` puts the commands recorded since
    the last call behind it (:func:`unless_after`): a delivery's handler records its writes, its
    caller closes the fence, then records its own.
    """

    def __init__(self, fence: tuple[str, float] | None = None) -> None:
        self.commands: list[Command] = []
        self._fence = fence
        self._fenced = 0

    def close_fence(self) -> None:
        """Make the commands recorded since the last call conditional on the fence (if any)."""
        if self._fence is not None:
            key, at = self._fence
            self.commands[self._fenced :] = unless_after(key, at, self.commands[self._fenced :])
        self._fenced = len(self.commands)

    def execute_command(self, *args: Any, **options: Any) -> Writes:
        """Record one command (what every redis-py command method calls)."""
        self.commands.append(args)
        return self

    def send(self, r: redis.Redis) -> None:
        """Run the recorded commands in one round trip, then forget them."""
        if self.commands:
            keys, words = script_words(self.commands)
            report_failures(APPLY(r, keys, words))
        self.commands = []
        self._fenced = 0


def script_words(commands: Sequence[Command], *first: Any) -> tuple[list[str], list[Any]]:
    """KEYS and ARGV for :data:`APPLY_LOOP`: ``first`` leads ARGV (a caller's own arguments)."""
    keys: list[str] = []
    words: list[Any] = list(first)
    for name, key, *rest in commands:
        keys.append(key)
        words.extend((len(rest), name, *rest))
    return keys, words


def report_failures(failures: Sequence[str]) -> None:
    """Log the commands of a batch that failed."""
    for failure in failures:
        log.error("deferred Redis write failed: %s", failure)
