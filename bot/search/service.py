"""How a running bot holds its library: where the cache lives, how a reload reaches every process.

The composition root (:mod:`bot.services`) calls :func:`open_library` once a process; the library
looks at the files again by itself every ``refresh_seconds`` (config/search.yaml) when it answers.
``python -m bot content reload`` calls :func:`request_reload`, which bumps
``Keys.content_generation()`` in Redis; each process's next ``refresh()`` sees the new value and
rescans every file (hashing them, not trusting modification times).
"""

from __future__ import annotations

import logging
from pathlib import Path

import redis

from bot.search.library import Library
from bot.settings import Settings
from bot.state import Keys

log = logging.getLogger(__name__)

CACHE_FOLDER = "index"
"""The index and embedding cache live in ``<data_dir>/index``."""


def cache_dir(settings: Settings) -> Path:
    """Where the persisted index of ``settings`` lives."""
    return settings.data_dir / CACHE_FOLDER


def generation_reader(client: redis.Redis | None):  # noqa: ANN201 - a zero-argument callable
    """A callable giving the reload counter (``None`` when Redis cannot be reached)."""
    if client is None:
        return None

    def read() -> str | None:
        try:
            return client.get(Keys.content_generation())
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            log.warning("content generation not read: %s", exc)
            return None

    return read


def open_library(settings: Settings, client: redis.Redis | None = None) -> Library:
    """The library of ``settings``: reload requests are read from ``client`` when given."""
    return Library.open(
        settings.content_dir, settings.config_dir, cache_dir(settings), generation_reader(client)
    )


def request_reload(client: redis.Redis) -> int:
    """Make every running process rescan content/ on its next refresh; the new generation."""
    return int(client.incr(Keys.content_generation()))
