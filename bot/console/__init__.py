"""The operator's console at ``/admin``: what the bot did, what nobody could answer, and why
someone got a digest or not.

Served by the web process itself (:func:`bot.app.create_app` calls :func:`init_app`), on the
same Redis state the bot acts on. Off unless ``BOT_ADMIN_TOKEN`` is set: then ``/admin`` is a
404. The pieces: :mod:`bot.console.auth` (login, sessions, CSRF, rate limit),
:mod:`bot.console.views` (the pages), :mod:`bot.console.figures` (the overview's charts and
tables), :mod:`bot.console.story` (a subscriber's story), :mod:`bot.console.words` (Chinese and
English). What it shows is recorded by the bot as it works: :mod:`bot.tally` (daily counts),
:mod:`bot.unanswered` (the question log), the digest report and ledgers (:mod:`bot.push`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from flask import Flask

if TYPE_CHECKING:
    from bot.services import Services

log = logging.getLogger(__name__)


def init_app(app: Flask, services: Services) -> bool:
    """Serve the console on ``app`` when ``BOT_ADMIN_TOKEN`` is set; whether it is on."""
    token = services.settings.admin_token
    if not token:
        log.info("console off: BOT_ADMIN_TOKEN is not set")
        return False
    from bot.console.auth import Gate
    from bot.console.views import bp

    app.extensions["bot.console"] = Gate(token, services)
    app.register_blueprint(bp)
    return True
