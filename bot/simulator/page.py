"""The web chat page: a phone-like chat with the account for several simulated subscribers.

Served by the ``sim api`` process at ``/`` (template ``templates/chat.html``, script
``static/chat.js``). The page sends through the server's :class:`~bot.simulator.driver.Driver`
(which signs and posts to the webhook as WeChat does) and hears pushes over server-sent events;
its header names the kind of account the fake API plays (``verified subscription account``...)::

    GET  /                         the page
    POST /sim/act   {"user", "line"}   one chat line or slash command -> the exchange as JSON
    GET  /sim/menu                 the menu the phone shows (created one, else the configured one)
    GET  /sim/stream?after=SEQ     server-sent events: one ``delivery`` per accepted push

``/sim/act`` reads at most :data:`ACT_BODY_BYTES` of body and :data:`MAX_LINE_BYTES` of line
(413 with ``{"error"}`` above either, which the page shows in the chat). Like every endpoint of the
``sim api`` process, these answer only loopback (or explicitly allowed) ``Host`` names
(:mod:`bot.simulator.api`).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, render_template, request
from flask.typing import ResponseReturnValue

from bot.simulator.actions import USAGE, ActionError, parse_action
from bot.wechat import privileges

log = logging.getLogger(__name__)

bp = Blueprint("page", __name__)

DEFAULT_USERS = ("alice", "bob", "carol")
"""Subscribers the page offers before any other is added."""

KEEPALIVE_SECONDS = 15.0
"""How often an idle event stream sends a comment so proxies keep it open."""

SEQ = re.compile(r"[0-9]{1,18}")
"""A delivery seq number as a query or ``Last-Event-ID`` (ASCII digits: ``str.isdigit`` also
takes "²", which ``int`` refuses)."""

USER_NAME = re.compile(r"[A-Za-z0-9_\-\u4e00-\u9fff]{1,32}")
"""A subscriber's name on the page (matched whole): it names the openid and the page's timeline."""

MAX_LINE_BYTES = 16 * 1024
"""The longest chat line the page sends, in UTF-8 bytes. WeChat's own text messages are far
shorter (a passive reply carries at most 2048 bytes of content); a longer line is not a
subscriber's."""

ACT_BODY_BYTES = 64 * 1024
"""The largest ``/sim/act`` body read: room for a line at the cap written with ``\\uXXXX``
escapes (as ``json.dumps`` writes Chinese: twice its UTF-8 size), and the user name."""


@bp.get("/")
def index() -> ResponseReturnValue:
    """The chat page."""
    driver = current_app.extensions["sim.driver"]
    platform = current_app.extensions["sim.platform"]
    return render_template(
        "chat.html",
        users=list(DEFAULT_USERS),
        kind=privileges.describe(platform.account_type, platform.verified),
        channels=", ".join(privileges.channels_for(platform.account_type, platform.verified)),
        webhook=driver.url if driver else "",
        mode=driver.settings.mode if driver else "",
        usage=USAGE.strip(),
    )


@bp.post("/sim/act")
def act() -> ResponseReturnValue:
    """Do one action as one subscriber and return the exchange."""
    request.max_content_length = ACT_BODY_BYTES  # over it, get_json raises 413 (see api.py)
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return jsonify(error='expected a JSON object {"user", "line"}'), 400
    user, line = body.get("user"), body.get("line")
    if not isinstance(user, str) or not USER_NAME.fullmatch(user):
        return jsonify(error="user must be 1-32 letters, digits, - or _"), 400
    if not isinstance(line, str):
        return jsonify(error="line must be text"), 400
    try:
        size = len(line.encode("utf-8"))
    except UnicodeEncodeError:  # a lone surrogate escaped in the JSON
        return jsonify(error="line must be valid Unicode text"), 400
    if size > MAX_LINE_BYTES:
        log.warning("refused /sim/act: a line of %d bytes", size)
        return jsonify(error=f"the line is {size} bytes of UTF-8; the simulator sends at most "
                             f"{MAX_LINE_BYTES} bytes ({MAX_LINE_BYTES // 1024} KiB) a line"), 413
    driver = current_app.extensions["sim.driver"]
    if driver is None:
        return jsonify(error="no webhook: start the simulator with --webhook URL"), 409
    try:
        action = parse_action(line)
    except ActionError as exc:
        return jsonify(error=str(exc)), 400
    return jsonify(driver.act(user, action).to_json())


@bp.get("/sim/menu")
def menu() -> ResponseReturnValue:
    """The menu buttons for the phone: ``{"button": [...], "created": bool}``."""
    platform = current_app.extensions["sim.platform"]
    if platform.menu is not None:
        return jsonify(button=platform.menu["button"], created=True)
    fallback: dict[str, Any] | None = current_app.extensions["sim.menu_fallback"]
    return jsonify(button=(fallback or {}).get("button", []), created=False)


@bp.get("/sim/stream")
def stream() -> ResponseReturnValue:
    """Server-sent events: every delivery after ``after`` (or ``Last-Event-ID``), then live."""
    start = request.headers.get("Last-Event-ID") or request.args.get("after", "0")
    if not SEQ.fullmatch(start):
        return jsonify(error="after must be a delivery seq number"), 400
    deliveries = current_app.extensions["sim.platform"].log

    def events() -> Iterator[str]:
        seq = int(start)
        yield "retry: 1000\n\n"
        while True:
            for entry in deliveries.since(seq):
                seq = entry["seq"]
                data = json.dumps(entry, ensure_ascii=False)
                yield f"id: {seq}\nevent: delivery\ndata: {data}\n\n"
            if not deliveries.wait(seq, KEEPALIVE_SECONDS):
                yield ": keepalive\n\n"

    return Response(events(), mimetype="text/event-stream",
                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
