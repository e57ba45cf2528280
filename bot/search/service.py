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


def check_content(settings: Settings) -> tuple[int, list[str]]:
    """What ``python -m bot content check`` reports: how many articles load from the content
    folder, and every problem (each file that does not, with line and fix; a search config
    that cannot be read)."""
    from bot.config import ConfigError
    from bot.search.analyzer import Analyzer
    from bot.search.content import load_folder
    from bot.search.options import load_options

    loaded = load_folder(settings.content_dir)
    problems = [str(p) for p in loaded.problems]
    try:
        load_options(settings.config_dir)
        Analyzer.from_config(settings.config_dir)
    except ConfigError as exc:
        problems.append(str(exc))
    return len(loaded.articles), problems


def reload_everywhere(library: Library, client: redis.Redis | None) -> int | None:
    """Re-index the content folder now and tell every process to rescan it: the processes on
    this machine through the index's stamp, the others through Redis (``client``); the new
    generation, or None when Redis could not be told."""
    library.refresh(force=True)
    library.request_reload()
    if client is None:
        return None
    return request_reload(client)


def request_reload(client: redis.Redis) -> int:
    """Make every running process rescan content/ on its next refresh; the new generation."""
    return int(client.incr(Keys.content_generation()))
