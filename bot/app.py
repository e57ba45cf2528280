"""The Flask app factory: the bot's services (:mod:`bot.services`) behind ``/wechat``, ``/healthz``
and, when ``BOT_ADMIN_TOKEN`` is set, the operator's console at ``/admin`` (:mod:`bot.console`).

``gunicorn 'bot.app:create_app()'`` serves it. Nothing happens at import time; the services are
built here, validated, and attached to ``app.extensions["bot.services"]``. A bad environment or
config file stops start-up with a message naming the variable or the file, line and key.
"""

from __future__ import annotations

import logging

import redis
from flask import Flask, Response, current_app, jsonify

from bot import clock, console, services
from bot.inbound import late, webhook

log = logging.getLogger(__name__)


def create_app(bundle: services.Services | None = None) -> Flask:
    """Build the app around ``bundle`` (default: :func:`bot.services.build`, from the env)."""
    clock.install_from_env()  # gunicorn imports the factory without the command line
    bundle = bundle or services.build()
    library = bundle.library  # built now: gunicorn's --preload shares it with every worker
    app = Flask(__name__)
    webhook.init_app(app, bundle, late.sender(bundle.redis))
    app.add_url_rule("/healthz", "healthz", healthz)
    console.init_app(app, bundle)
    log.info(
        "bot ready: mode=%s, %s articles, config from %s",
        bundle.settings.mode,
        library.status().get("articles"),
        bundle.settings.config_dir,
    )
    return app


def healthz() -> tuple[Response, int]:
    """JSON with the state of Redis and of the content index; 503 when either is not usable."""
    bundle: services.Services = current_app.extensions["bot.services"]
    try:
        bundle.redis.ping()
        redis_state = {"ok": True}
    except redis.RedisError as exc:
        redis_state = {"ok": False, "error": type(exc).__name__}
    content = bundle.library.status()
    healthy = redis_state["ok"] and bool(content.get("ready"))
    body = {"ok": healthy, "redis": redis_state, "content": content}
    return jsonify(body), 200 if healthy else 503
