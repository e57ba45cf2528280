"""The Flask app factory: settings -> config -> Redis -> content library -> blueprints.

``gunicorn 'bot.app:create_app()'`` serves it. Nothing happens at import time; everything the app
needs is built here, validated, and attached to ``app.extensions``. A bad environment or config
file stops start-up with a message naming the variable or the file, line and key.
"""

from __future__ import annotations

import logging

import redis
from flask import Flask, Response, jsonify

from bot import clock, state, webhook
from bot.config import Config, load_config
from bot.handlers import Context
from bot.jobs import late_sender
from bot.search import Library
from bot.search.service import open_library
from bot.settings import Settings
from bot.wire import Envelope

log = logging.getLogger(__name__)


def create_app(
    settings: Settings | None = None,
    config: Config | None = None,
    redis_client: redis.Redis | None = None,
    library: Library | None = None,
) -> Flask:
    """Build the app. Arguments replace what would come from the environment (for tests)."""
    clock.install_from_env()  # gunicorn imports the factory without the command line
    settings = settings or Settings.from_env()
    config = config or load_config(settings.config_dir)
    app = Flask(__name__)
    app.extensions["bot.settings"] = settings
    app.extensions["bot.config"] = config
    client = state.init_app(app, redis_client)
    library = library or open_library(settings, client)
    app.extensions["bot.library"] = library
    context = Context(config=config, redis=client, library=library)
    webhook.init_app(
        app,
        webhook.Webhook(
            settings=settings,
            config=config,
            envelope=Envelope(settings.token, settings.aes_key, settings.appid),
            context=context,
            enqueue_late=late_sender(client),
        ),
    )
    app.add_url_rule("/healthz", "healthz", healthz)
    log.info(
        "bot ready: mode=%s, %s articles, config from %s",
        settings.mode,
        library.status().get("articles"),
        settings.config_dir,
    )
    return app


def healthz() -> tuple[Response, int]:
    """JSON with the state of Redis and of the content index; 503 when either is not usable."""
    from flask import current_app

    client = state.get_redis()
    try:
        client.ping()
        redis_state = {"ok": True}
    except redis.RedisError as exc:
        redis_state = {"ok": False, "error": type(exc).__name__}
    content = current_app.extensions["bot.library"].status()
    healthy = redis_state["ok"] and bool(content.get("ready"))
    body = {"ok": healthy, "redis": redis_state, "content": content}
    return jsonify(body), 200 if healthy else 503
