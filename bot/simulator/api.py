"""The fake WeChat API: the real outbound endpoints, plus what only a simulator needs.

``python -m bot sim api`` serves this app on its own port (8701, the default ``WECHAT_API_BASE``);
the chat page (``bot.simulator.page``) is served by the same process at ``/``.

WeChat's endpoints, with its query parameters and JSON shapes (PLATFORM.md section 5); every
answer is HTTP 200 with ``errcode``/``errmsg`` (the message ending in `` rid: ...``) on error::

    GET  /cgi-bin/token?grant_type=client_credential&appid=...&secret=...
    POST /cgi-bin/message/custom/send?access_token=...     {"touser","msgtype","text":{...}}
    POST /cgi-bin/message/mass/sendall?access_token=...    {"filter":{"is_to_all":true},...}
    POST /cgi-bin/message/mass/send?access_token=...       {"touser":[openid, ...],...}
    POST /cgi-bin/message/mass/preview?access_token=...    {"touser":openid,...}
    POST /cgi-bin/message/template/send?access_token=...   {"touser","template_id","data"}
    POST /cgi-bin/menu/create?access_token=...             {"button":[...]}
    GET  /cgi-bin/menu/get?access_token=...    GET /cgi-bin/menu/delete?access_token=...

The simulator's own endpoints (JSON)::

    POST /sim/activity  {"openid", "kind", "name"?, "time"?}  what a subscriber did, as WeChat
                        knows it: kind is message, follow, unfollow, scan, click, view, location,
                        block, unblock, refuse_templates or accept_templates; time (epoch seconds)
                        defaults to the API's clock. The driver posts it before each delivery.
    GET  /sim/deliveries?openid=&after=SEQ   accepted messages after SEQ: {"deliveries", "last"}
    GET  /sim/subscribers                    what the platform knows of each subscriber
    GET  /sim/clock                          {"now", "iso", "virtual", "speed"}
    POST /sim/clock     {"advance": seconds}  move a virtual clock forward (400 on wall time)

MASSSENDJOBFINISH and TEMPLATESENDJOBFINISH are posted back to the webhook, signed for the
account's mode, shortly after the send.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, current_app, jsonify, request
from flask.typing import ResponseReturnValue

from bot import clock
from bot.settings import Settings
from bot.simulator.deliveries import DeliveryLog, iso_time
from bot.simulator.driver import DELIVERIES, DELIVERY_TIMEOUT, Driver, Report, openid_for
from bot.simulator.platform import ACTIVITIES, Platform, refused
from bot.wechat.api import ApiError

log = logging.getLogger(__name__)

PLATFORM_SENDER = openid_for("platform")
"""``FromUserName`` of the job-finish events the platform posts."""

cgi = Blueprint("cgi", __name__, url_prefix="/cgi-bin")
sim = Blueprint("sim", __name__, url_prefix="/sim")


def create_api(
    settings: Settings,
    webhook_url: str | None = None,
    log_path: Path | None = None,
    account_type: str = "subscription",
    timezone: str = "Asia/Shanghai",
    menu_fallback: dict[str, Any] | None = None,
    timeout: float = DELIVERY_TIMEOUT,
    deliveries: int = DELIVERIES,
    virtual_clock: clock.VirtualClock | None = None,
) -> Flask:
    """The fake API (and chat page) for the account in ``settings``.

    ``webhook_url`` is where the chat page's messages and the job-finish events go (None: the
    page cannot send and no events are posted); ``menu_fallback`` is what the page shows as the
    menu until one is created through the API (e.g. config/menu.yaml's); ``virtual_clock``, the
    clock installed in ``bot.clock`` when the API runs on virtual time (``/sim/clock`` moves it).
    """
    from bot.simulator import page

    app = Flask(__name__)
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    app.json.sort_keys = False  # type: ignore[attr-defined]
    platform = Platform(settings.appid, settings.appsecret, DeliveryLog(log_path, timezone),
                        account_type=account_type, timezone=timezone)
    driver = None
    if webhook_url:
        driver = Driver(webhook_url, settings, report=_recorder(platform), timeout=timeout,
                        deliveries=deliveries)
        platform.notify = _notifier(driver)
    app.extensions["sim.platform"] = platform
    app.extensions["sim.driver"] = driver
    app.extensions["sim.menu_fallback"] = menu_fallback
    app.extensions["sim.clock"] = virtual_clock
    app.register_blueprint(cgi)
    app.register_blueprint(sim)
    app.register_blueprint(page.bp)
    app.register_error_handler(ApiError, _api_error)
    return app


def get_platform() -> Platform:
    """The :class:`Platform` of the current app."""
    return current_app.extensions["sim.platform"]


def _recorder(platform: Platform) -> Report:
    def report(openid: str, activity: str, name: str, at: float) -> None:
        platform.record(openid, activity, name)

    return report


def _notifier(driver: Driver) -> Callable[[dict[str, Any]], None]:
    def notify(fields: dict[str, Any]) -> None:
        def post() -> None:
            exchange = driver.post_event(fields, PLATFORM_SENDER)
            log.info("posted %s to the webhook: %s", fields["Event"],
                     exchange.problem or f"HTTP {exchange.attempts[-1].status}")

        threading.Timer(0.2, post).start()

    return notify


def _api_error(exc: ApiError) -> ResponseReturnValue:
    rid = "-".join(secrets.token_hex(4) for _ in range(3))
    return jsonify({"errcode": exc.code, "errmsg": f"{exc.message} rid: {rid}"})


def _body() -> dict[str, Any]:
    raw = request.get_data()
    if not raw.strip():
        raise refused(44002)
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise refused(47001, "not JSON") from None
    if not isinstance(body, dict):
        raise refused(47001, "not a JSON object")
    return body


def _authorised() -> Platform:
    platform = get_platform()
    platform.check_token(request.args.get("access_token"))
    return platform


# --- WeChat's endpoints -------------------------------------------------------------------------


@cgi.get("/token")
def token() -> ResponseReturnValue:
    """Issue an access token."""
    args = request.args
    return jsonify(get_platform().issue_token(
        args.get("grant_type", ""), args.get("appid", ""), args.get("secret", "")))


@cgi.post("/message/custom/send")
def custom_send() -> ResponseReturnValue:
    """A customer-service message."""
    platform = _authorised()
    return jsonify(platform.send_custom(_body()))


@cgi.post("/message/mass/sendall")
def mass_sendall() -> ResponseReturnValue:
    """A mass send to every follower."""
    platform = _authorised()
    return jsonify(platform.send_mass(_body(), "all"))


@cgi.post("/message/mass/send")
def mass_send() -> ResponseReturnValue:
    """A mass send to a list of openids."""
    platform = _authorised()
    return jsonify(platform.send_mass(_body(), "list"))


@cgi.post("/message/mass/preview")
def mass_preview() -> ResponseReturnValue:
    """A mass message previewed on one follower's phone."""
    platform = _authorised()
    return jsonify(platform.preview_mass(_body()))


@cgi.post("/message/template/send")
def template_send() -> ResponseReturnValue:
    """A template message."""
    platform = _authorised()
    return jsonify(platform.send_template(_body()))


@cgi.post("/menu/create")
def menu_create() -> ResponseReturnValue:
    """Replace the custom menu."""
    platform = _authorised()
    return jsonify(platform.create_menu(_body()))


@cgi.get("/menu/get")
def menu_get() -> ResponseReturnValue:
    """The custom menu."""
    return jsonify(_authorised().get_menu())


@cgi.get("/menu/delete")
def menu_delete() -> ResponseReturnValue:
    """Remove the custom menu."""
    return jsonify(_authorised().delete_menu())


# --- the simulator's own endpoints --------------------------------------------------------------


@sim.post("/activity")
def activity() -> ResponseReturnValue:
    """Record what a subscriber did."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("openid"), str) \
            or body.get("kind") not in ACTIVITIES:
        return jsonify(error=f"expected {{openid, kind}} with kind one of {', '.join(ACTIVITIES)}"
                       ), 400
    at = body.get("time")
    if at is not None and not isinstance(at, (int, float)):
        return jsonify(error="time must be seconds since the epoch"), 400
    sub = get_platform().record(body["openid"], body["kind"], str(body.get("name") or ""), at)
    return jsonify(_subscriber_json(asdict(sub)))


@sim.get("/deliveries")
def deliveries() -> ResponseReturnValue:
    """Accepted messages after ``after``, for one openid or all."""
    after = request.args.get("after", "0")
    if not after.isdigit():
        return jsonify(error="after must be a delivery seq number"), 400
    platform = get_platform()
    entries = platform.log.since(int(after), request.args.get("openid") or None)
    return jsonify(deliveries=entries, last=platform.log.last_seq)


@sim.get("/subscribers")
def subscribers() -> ResponseReturnValue:
    """Every subscriber the platform has heard of."""
    subs = get_platform().subscribers.values()
    return jsonify(subscribers=[_subscriber_json(asdict(s)) for s in subs])


def _subscriber_json(sub: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in sub.items() if k != "mass_by_month"}


@sim.get("/clock")
def clock_get() -> ResponseReturnValue:
    """The API's clock."""
    virtual = current_app.extensions["sim.clock"]
    now = virtual.now() if virtual else clock.now()  # the same clock when installed
    return jsonify(now=now, iso=iso_time(now, get_platform().timezone),
                   virtual=virtual is not None, speed=virtual.speed if virtual else 1.0)


@sim.post("/clock")
def clock_advance() -> ResponseReturnValue:
    """Move a virtual clock forward."""
    body = request.get_json(silent=True) or {}
    seconds = body.get("advance")
    current = current_app.extensions["sim.clock"]
    if current is None:
        return jsonify(error="the API runs on wall-clock time; start it with --now"), 400
    if not isinstance(seconds, (int, float)) or seconds < 0:
        return jsonify(error="advance must be a number of seconds >= 0"), 400
    current.advance(seconds)
    return clock_get()
