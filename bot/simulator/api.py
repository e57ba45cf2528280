"""The fake WeChat API: the real outbound endpoints, plus what only a simulator needs.

``python -m bot sim api`` serves this app on its own port (8701, the default ``WECHAT_API_BASE``);
the chat page (``bot.simulator.page``) is served by the same process at ``/``.

WeChat's endpoints, with its query parameters and JSON shapes (PLATFORM.md section 5); every
answer is HTTP 200 with ``errcode``/``errmsg`` (the message ending in `` rid: ...``) on error, and
48001 for an API the kind of account played (``create_api(account_type=, verified=)``) may not
call (:mod:`bot.wechat.privileges`)::

    GET  /cgi-bin/token?grant_type=client_credential&appid=...&secret=...
    POST /cgi-bin/stable_token   {"grant_type":"client_credential","appid","secret","force_refresh"}
    POST /cgi-bin/message/custom/send?access_token=...     {"touser","msgtype","text":{...}}
    POST /cgi-bin/message/mass/sendall?access_token=...    {"filter":{"is_to_all":true},...} or
                                                   {"filter":{"is_to_all":false,"tag_id":N},...}
    POST /cgi-bin/message/mass/send?access_token=...       {"touser":[openid, ...],...}
    POST /cgi-bin/message/mass/preview?access_token=...    {"touser":openid,...}
    POST /cgi-bin/message/template/send?access_token=...   {"touser","template_id","data"}
    POST /cgi-bin/menu/create?access_token=...             {"button":[...]}
    GET  /cgi-bin/menu/get?access_token=...    GET /cgi-bin/menu/delete?access_token=...
    POST /cgi-bin/tags/create?access_token=...             {"tag":{"name"}} -> {"tag":{"id","name"}}
    GET  /cgi-bin/tags/get?access_token=...                -> {"tags":[{"id","name","count"}]}
    POST /cgi-bin/tags/delete?access_token=...             {"tag":{"id"}}
    POST /cgi-bin/tags/members/batchtagging?access_token=...    {"openid_list":[...],"tagid":N}
    POST /cgi-bin/tags/members/batchuntagging?access_token=...  {"openid_list":[...],"tagid":N}
    POST /cgi-bin/user/tag/get?access_token=...   {"tagid":N,"next_openid":""}
                                                  -> {"count","data":{"openid":[...]},"next_openid"}
    POST /cgi-bin/tags/getidlist?access_token=...          {"openid"} -> {"tagid_list":[...]}

The simulator's own endpoints (JSON)::

    POST /sim/activity  {"openid", "kind", "name"?, "time"?}  what a subscriber did, as WeChat
                        knows it: kind is message, follow, unfollow, scan, click, view, location,
                        block, unblock, refuse_templates or accept_templates; time (epoch seconds)
                        defaults to the API's clock. The driver posts it before each delivery.
    POST /sim/reply     {"openid", "name"?, "msgtype", "content", "time"?}  the passive reply
                        (msgtype text or news) WeChat showed the subscriber; an out-of-process
                        driver posts it once per message, in-process drivers call the platform.
    GET  /sim/deliveries?openid=&after=SEQ   delivery-log entries after SEQ: {"deliveries", "last"}
    GET  /sim/subscribers                    what the platform knows of each subscriber
    GET  /sim/account   {"type", "verified", "kind", "channels"}  the kind of account played and
                        the digest channels it can use
    GET  /sim/calls                          calls per /cgi-bin/ path: {"/cgi-bin/...": n}
    GET  /sim/refusals                       error answers per errcode: {"48001": n, ...}
    GET  /sim/clock                          {"now", "iso", "virtual", "speed"}
    POST /sim/clock     {"advance": seconds}  move a virtual clock forward (400 on wall time)

MASSSENDJOBFINISH and TEMPLATESENDJOBFINISH are posted back to the webhook, signed for the
account's mode, shortly after the send.

Every endpoint (the page, its scripts, ``/sim/*`` and ``/cgi-bin/*`` alike) answers only requests
whose ``Host`` names this machine (``localhost``, any ``127.x.y.z``, ``[::1]``, with or without a
port) or a host the developer allowed (``sim api --allow-host NAME``); any other gets 403 and a
log line. A web page can point its own DNS name at 127.0.0.1 (DNS rebinding) and then read and
drive the simulator as a same-origin page, but its requests still carry its own name as ``Host``.
``/cgi-bin/`` gets the same check: the bot's client reaches it on ``WECHAT_API_BASE``, which is
``http://127.0.0.1:<port>`` in ``make run`` and the tests; a refusal there is WeChat-shaped
(``errcode`` 40164, as WeChat answers a caller not in its whitelist) so the client reports it as
a refusal. Bodies are read up to :data:`MAX_BODY_BYTES` (413 above it).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
import secrets
import threading
from collections.abc import Callable, Collection
from dataclasses import asdict
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import RequestEntityTooLarge

from bot import clock
from bot.settings import Settings
from bot.simulator import page
from bot.simulator.deliveries import DeliveryLog, iso_time
from bot.simulator.driver import DELIVERIES, DELIVERY_TIMEOUT, Driver, Report, openid_for
from bot.simulator.platform import ACTIVITIES, Platform, refused
from bot.wechat import privileges
from bot.wechat.api import ApiError

log = logging.getLogger(__name__)

PLATFORM_SENDER = openid_for("platform")
"""``FromUserName`` of the job-finish events the platform posts."""

LOOPBACK_NAMES = frozenset({"localhost"})
"""Host names that mean this machine whatever DNS says; addresses are checked as addresses (any
127.x.y.z, ``[::1]``)."""

HOST_HEADER = re.compile(r"(?P<name>\[[0-9a-f:.]+\]|[^:\[\]]+)(?::[0-9]{0,5})?")
"""A ``Host`` value (lower-cased): a name, an IPv4 address or a bracketed IPv6 address, then
perhaps a port."""

MAX_BODY_BYTES = 1024 * 1024
"""The largest request body any endpoint reads (413 above it). The bot's largest call, a mass
send, is a few KiB; the cap keeps one request from filling the process's memory."""

FOREIGN_HOST = 40164
"""``errcode`` of a ``/cgi-bin/`` call refused for its ``Host``: WeChat's code for a caller not in
the account's whitelist, so the bot's client raises :class:`ApiError` instead of reading the
refusal as a success."""

TOO_LARGE = 45002
"""``errcode`` of a ``/cgi-bin/`` call whose body is over the cap (WeChat's "content size out of
limit")."""

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
    allowed_hosts: Collection[str] = (),
    verified: bool = True,
) -> Flask:
    """The fake API (and chat page) for the account in ``settings``.

    ``account_type`` and ``verified`` are the kind of account played (what it may call, its
    mass-send quota; the default, a verified subscription account, as :class:`Platform`'s).

    ``webhook_url`` is where the chat page's messages and the job-finish events go (None: the
    page cannot send and no events are posted); ``menu_fallback`` is what the page shows as the
    menu until one is created through the API (e.g. config/menu.yaml's); ``virtual_clock``, the
    clock installed in ``bot.clock`` when the API runs on virtual time (``/sim/clock`` moves it);
    ``allowed_hosts``, the ``Host`` names (``NAME`` or ``NAME:PORT``) served besides the loopback
    ones.
    """
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    app.json.sort_keys = False  # type: ignore[attr-defined]
    platform = Platform(settings.appid, settings.appsecret, DeliveryLog(log_path, timezone),
                        account_type=account_type, timezone=timezone, verified=verified)
    driver = None
    if webhook_url:
        driver = Driver(webhook_url, settings, report=_recorder(platform), timeout=timeout,
                        deliveries=deliveries, replied=platform.show_reply)
        platform.notify = _notifier(driver)
    app.extensions["sim.platform"] = platform
    app.extensions["sim.driver"] = driver
    app.extensions["sim.menu_fallback"] = menu_fallback
    app.extensions["sim.clock"] = virtual_clock
    app.extensions["sim.allowed_hosts"] = frozenset(host.lower() for host in allowed_hosts)
    app.before_request(_refuse_foreign_host)
    app.before_request(_count_call)
    app.register_blueprint(cgi)
    app.register_blueprint(sim)
    app.register_blueprint(page.bp)
    app.register_error_handler(ApiError, _api_error)
    app.register_error_handler(RequestEntityTooLarge, _too_large)
    return app


def host_allowed(host: str, allowed: Collection[str] = ()) -> bool:
    """Whether a ``Host`` value names this machine, or is one of ``allowed``.

    ``allowed`` holds lower-cased ``NAME`` (any port) or ``NAME:PORT`` values; loopback means
    ``localhost``, any 127.x.y.z in dotted decimal, or ``[::1]``, each with or without a port.
    """
    host = host.lower()
    parsed = HOST_HEADER.fullmatch(host)
    if parsed is None:
        return False
    name = parsed["name"]
    if name in LOOPBACK_NAMES or name in allowed or host in allowed:
        return True
    try:
        address = ipaddress.ip_address(name[1:-1] if name.startswith("[") else name)
    except ValueError:
        return False
    return address.is_loopback and (address.version == 6) == name.startswith("[")


def _refuse_foreign_host() -> ResponseReturnValue | None:
    """403 for a request whose ``Host`` is neither loopback nor allowed (see the module doc)."""
    host = request.host
    if host_allowed(host, current_app.extensions["sim.allowed_hosts"]):
        return None
    log.warning("refused %s %s: Host %r is not a loopback name (start the simulator with "
                "--allow-host NAME to serve another)", request.method, request.path, host)
    message = (f"Host {host!r} refused: the simulator answers loopback names only "
               "(localhost, 127.0.0.1, [::1]) unless started with --allow-host NAME")
    if _wechat_shaped():
        return _wechat_error(FOREIGN_HOST, "invalid ip, not in whitelist: " + message), 403
    return jsonify(error=message), 403


def _count_call() -> None:
    """Count a call of one of WeChat's endpoints (:attr:`Platform.calls`)."""
    if request.blueprint == "cgi" and request.url_rule is not None:
        get_platform().count_call(request.path)


def _too_large(exc: RequestEntityTooLarge) -> ResponseReturnValue:
    limit = request.max_content_length or MAX_BODY_BYTES
    message = f"request body over {limit} bytes"
    log.warning("refused %s %s: %s", request.method, request.path, message)
    if _wechat_shaped():
        return _wechat_error(TOO_LARGE, "content size out of limit: " + message), 413
    return jsonify(error=message), 413


def _wechat_shaped() -> bool:
    """Whether the request is to WeChat's endpoints, whose every answer has an ``errcode``."""
    return request.path.startswith("/cgi-bin/")


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
    return _wechat_error(exc.code, exc.message)


def _wechat_error(code: int, message: str) -> Response:
    get_platform().count_refusal(code)
    rid = "-".join(secrets.token_hex(4) for _ in range(3))
    return jsonify({"errcode": code, "errmsg": f"{message} rid: {rid}"})


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


@cgi.post("/stable_token")
def stable_token() -> ResponseReturnValue:
    """The stable access token."""
    body = _body()
    return jsonify(get_platform().stable_token(
        body.get("grant_type"), body.get("appid"), body.get("secret"),
        force_refresh=body.get("force_refresh") is True))


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


@cgi.post("/tags/create")
def tags_create() -> ResponseReturnValue:
    """Create a user tag."""
    platform = _authorised()
    return jsonify(platform.create_tag(_body()))


@cgi.get("/tags/get")
def tags_get() -> ResponseReturnValue:
    """The account's tags with their follower counts."""
    return jsonify(_authorised().get_tags())


@cgi.post("/tags/delete")
def tags_delete() -> ResponseReturnValue:
    """Delete a user tag."""
    platform = _authorised()
    return jsonify(platform.delete_tag(_body()))


@cgi.post("/tags/members/batchtagging")
def tags_batch_tagging() -> ResponseReturnValue:
    """Put up to 50 followers in a tag."""
    platform = _authorised()
    return jsonify(platform.tag_members(_body(), add=True))


@cgi.post("/tags/members/batchuntagging")
def tags_batch_untagging() -> ResponseReturnValue:
    """Take up to 50 followers out of a tag."""
    platform = _authorised()
    return jsonify(platform.tag_members(_body(), add=False))


@cgi.post("/user/tag/get")
def user_tag_get() -> ResponseReturnValue:
    """One page of a tag's followers."""
    platform = _authorised()
    return jsonify(platform.tag_page(_body()))


@cgi.post("/tags/getidlist")
def tags_getidlist() -> ResponseReturnValue:
    """The tags one follower carries."""
    platform = _authorised()
    return jsonify(platform.tags_of(_body()))


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


REPLY_TYPES = ("text", "news")
"""Passive replies ``/sim/reply`` logs: the ones a subscriber reads."""


@sim.post("/reply")
def reply() -> ResponseReturnValue:
    """Log the passive reply WeChat showed a subscriber."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("openid"), str) \
            or body.get("msgtype") not in REPLY_TYPES or not isinstance(body.get("content"), str):
        return jsonify(error="expected {openid, msgtype, content} with msgtype text or news"), 400
    at = body.get("time")
    if at is not None and not isinstance(at, (int, float)):
        return jsonify(error="time must be seconds since the epoch"), 400
    entry = get_platform().show_reply(body["openid"], str(body.get("name") or ""),
                                      body["msgtype"], body["content"], at)
    return jsonify(entry)


@sim.get("/deliveries")
def deliveries() -> ResponseReturnValue:
    """Accepted messages after ``after``, for one openid or all."""
    after = request.args.get("after", "0")
    if not page.SEQ.fullmatch(after):
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


@sim.get("/account")
def account() -> ResponseReturnValue:
    """The kind of account played and the digest channels it can use."""
    platform = get_platform()
    kind = (platform.account_type, platform.verified)
    return jsonify(type=kind[0], verified=kind[1], kind=privileges.describe(*kind),
                   channels=list(privileges.channels_for(*kind)))


@sim.get("/calls")
def calls() -> ResponseReturnValue:
    """How many calls each of WeChat's endpoints got."""
    return jsonify(get_platform().counts()[0])


@sim.get("/refusals")
def refusals() -> ResponseReturnValue:
    """How many error answers of each ``errcode`` the API gave."""
    return jsonify({str(code): n for code, n in sorted(get_platform().counts()[1].items())})


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
