"""The composition root: settings -> config -> Redis -> content library -> API client, built here.

Every entry point gets its :class:`Services` from this module and from nowhere else: the web app
(:func:`bot.app.create_app`), the RQ worker and its jobs (:func:`current`), every ``python -m
bot`` command (:func:`bot.cli.open_services`), and the simulator's scenario. Handlers and jobs
receive the same bundle; no other module connects to Redis, loads ``config/``, opens the library
or makes an API client.

Redis, the library (jieba, the index, the embedding models) and the API client are made on first
use, so a command that needs none of them starts fast; the web app asks for the library at
start-up, so gunicorn's ``--preload`` builds it once before forking. Services built ``offline``
(``python -m bot search``, ``content ...``) never connect to Redis nor start the embedded one.

Configuration is validated when the bundle is built (:func:`validate`): every YAML file under
``config/``, the search settings included, so a typo stops start-up (and ``python -m bot check``)
with the file, line, key and fix named, never a 500 later.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache, cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import redis

from bot import clock, state
from bot.config import Config, ConfigError, load_config
from bot.settings import Settings
from bot.state.writes import Writes

if TYPE_CHECKING:
    from bot.search import Library
    from bot.wechat.api import WeChatApi
    from bot.wechat.envelope import Envelope

SEARCH_FILES = ("search.yaml", "search/synonyms.yaml")
"""The YAML files of search settings (read by :mod:`bot.search.options`)."""


class Services:
    """What the bot is made of: settings, config, Redis, the content library, the API client.

    Arguments replace what :func:`build` would make (tests pass fakeredis, a prepared library, a
    counting API). :attr:`writes`, when set, is the batch of the delivery being answered (see
    :meth:`later`).
    """

    def __init__(
        self,
        settings: Settings,
        config: Config,
        redis_client: redis.Redis | None = None,
        *,
        library: Library | None = None,
        api: WeChatApi | None = None,
        offline: bool = False,
    ) -> None:
        self.settings = settings
        self.config = config
        self.offline = offline
        self.writes: Writes | None = None
        for name, given in (("redis", redis_client), ("library", library), ("api", api)):
            if given is not None:
                setattr(self, name, given)

    @cached_property
    def redis(self) -> redis.Redis:
        """A client of the bot's Redis that decodes replies to ``str`` (the embedded one, started
        if need be, unless ``REDIS_URL`` names another)."""
        if self.offline:
            raise RuntimeError("these services were built offline: they have no Redis")
        return state.connect(state.resolve_url(self.settings.redis_url, self.settings.data_dir))

    @cached_property
    def library(self) -> Library:
        """The content library over ``BOT_CONTENT_DIR``; reloads are announced through Redis."""
        from bot.search.service import open_library

        return open_library(self.settings, None if self.offline else self.redis)

    @cached_property
    def api(self) -> WeChatApi:
        """The WeChat API client; its access token is shared by every process through Redis."""
        from bot.wechat.api import WeChatApi

        return WeChatApi.from_settings(self.settings, self.redis)

    @cached_property
    def envelope(self) -> Envelope:
        """The AES envelope of this account (compatible and safe modes)."""
        from bot.wechat.envelope import Envelope

        s = self.settings
        return Envelope(s.token, s.aes_key, s.appid)

    def answering(self, writes: Writes) -> Services:
        """The same services for one delivery: :meth:`later` records into ``writes``."""
        bound = copy.copy(self)
        bound.writes = writes
        return bound

    @contextmanager
    def later(self) -> Iterator[Writes]:
        """A batch (:class:`bot.state.writes.Writes`) for writes a handler will not read back.

        While answering a delivery (:meth:`answering`), they are sent together with the answer,
        before it reaches anyone; otherwise (a job, a test), when the block ends.
        """
        if self.writes is not None:
            yield self.writes
            return
        batch = Writes()
        yield batch
        batch.send(self.redis)


def validate(config_dir: Path) -> Config:
    """Load every YAML file under ``config_dir``; :class:`ConfigError` names the first mistake.

    A YAML file the bot does not read is a mistake too (a misspelt name would be ignored).
    """
    from bot.config import CONFIG_FILES
    from bot.search.options import load_options, load_synonyms

    config = load_config(config_dir)
    load_options(config_dir)
    load_synonyms(config_dir / "search" / "synonyms.yaml")
    known = {*CONFIG_FILES, *SEARCH_FILES}
    for path in sorted([*config_dir.rglob("*.yaml"), *config_dir.rglob("*.yml")]):
        name = path.relative_to(config_dir).as_posix()
        if name not in known:
            raise ConfigError(
                path,
                "the bot reads no such file; rename it to one of "
                + ", ".join(sorted(known))
                + " (or move it out of the config folder)",
            )
    return config


def build(
    settings: Settings | None = None,
    *,
    config: Config | None = None,
    redis_client: redis.Redis | None = None,
    library: Library | None = None,
    api: WeChatApi | None = None,
    offline: bool = False,
) -> Services:
    """The bot's services for ``settings`` (default: the environment), validated.

    Raises :class:`~bot.settings.SettingsError` or :class:`~bot.config.ConfigError` naming the
    variable, or the file, line and key, that is wrong. Redis is connected on first use; without
    ``REDIS_URL`` that starts (or joins) the embedded server under ``BOT_DATA_DIR``.
    """
    settings = settings or Settings.from_env()
    config = config or validate(settings.config_dir)
    return Services(
        settings, config, redis_client, library=library, api=api, offline=offline
    )


@cache
def current() -> Services:
    """This process's services, built from the environment once (workers and their jobs)."""
    clock.install_from_env()
    return build()
