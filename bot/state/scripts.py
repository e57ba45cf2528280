"""Lua in Redis, run one way: :class:`Lua`, called by SHA1 and sent only when the server lacks it.

Every script of the bot goes through here: the batches of :mod:`bot.state.writes`, the webhook's
claim, the throttle's files under ``bot/push/``, and :data:`DROP_IF_SAME`, the compare-and-delete
that releases a lock (or a stale token) only while it still holds the value its owner wrote.
"""

from __future__ import annotations

from collections.abc import Sequence
from hashlib import sha1
from pathlib import Path
from typing import Any

import redis


class Lua:
    """One script: ``Lua(source)(r, keys, args)`` runs it on the server ``r`` talks to."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = sha1(source.encode()).hexdigest()

    @classmethod
    def from_files(cls, *paths: Path) -> Lua:
        """A script made of files, in order (shared functions first)."""
        return cls("".join(path.read_text(encoding="utf-8") for path in paths))

    def __call__(self, r: redis.Redis, keys: Sequence[str], args: Sequence[Any] = ()) -> Any:
        """Run with ``keys`` and ``args``; the source travels only to a fresh or flushed server."""
        try:
            return r.evalsha(self.sha, len(keys), *keys, *args)
        except redis.exceptions.NoScriptError:
            return r.eval(self.source, len(keys), *keys, *args)


DROP_IF_SAME = Lua(
    """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
)
"""Delete ``KEYS[1]`` only while it holds ``ARGV[1]``; returns 1 when it did."""


def drop_if_same(r: redis.Redis, key: str, value: str) -> bool:
    """Delete ``key`` if it still holds ``value`` (what its owner wrote); True when deleted."""
    return bool(DROP_IF_SAME(r, [key], [value]))
