"""The fake WeChat platform's rules, without HTTP: tokens, subscribers, windows and quotas.

:class:`Platform` answers what the real outbound API would (PLATFORM.md section 5), raising
:class:`~bot.wechat.api.ApiError` (the bot's own) with the real error codes. It knows what each
simulated subscriber did because
the driver tells it (:meth:`Platform.record`), as WeChat knows. Time is the installed clock
(``bot.clock``), so windows and quotas follow virtual time.

Rules simulated:

- tokens: a new token retires the previous one after :data:`TOKEN_GRACE` s (then 40001); a
  token lives 7200 s (then 42001); :data:`TOKEN_DAILY_QUOTA` token calls a day (then 45009)
- customer service: 5 sends within 48 h of the subscriber's last message, 3 within 1 min of a
  follow, scan or menu click (45047 once used, 45015 outside both windows); 43004 when not
  following, 48002 when the subscriber turned messages off, 40003 for an unknown openid
- mass send: a subscription account succeeds once per day (account time zone), a service
  account reaches a follower 4 times per calendar month (45028 when nothing is left);
  :data:`MASS_PER_MINUTE` calls a minute (45011); a repeated ``clientmsgid`` within 24 h is
  45065; each send is confirmed by a MASSSENDJOBFINISH event handed to ``notify``.
  Tags are not simulated: a tag filter reaches every follower.
- template send: service accounts only (48001), 43101 when the follower refuses them;
  confirmed by TEMPLATESENDJOBFINISH
- menu create/get/delete with the platform's button limits (400xx) and 46003 when none exists
"""

from __future__ import annotations

import itertools
import json
import secrets
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from bot import clock, subscribers
from bot.config import (
    MENU_KEY_BYTES,
    MENU_SUB_BUTTONS,
    MENU_SUB_NAME_BYTES,
    MENU_TOP_BUTTONS,
    MENU_TOP_NAME_BYTES,
    MENU_URL_BYTES,
)
from bot.simulator.deliveries import DeliveryLog
from bot.wechat.api import ApiError

TOKEN_LIFETIME = 7200
TOKEN_GRACE = 300
"""Seconds the previous token keeps working after a new one is issued."""
TOKEN_DAILY_QUOTA = 2000
MESSAGE_WINDOW, MESSAGE_WINDOW_SENDS = 48 * 3600, 5
EVENT_WINDOW, EVENT_WINDOW_SENDS = 60, 3
MASS_PER_MINUTE = 60
SERVICE_MASS_PER_MONTH = 4
CLIENTMSGID_MEMORY = 24 * 3600

ERRORS: dict[int, str] = {
    -1: "system error",
    40001: "invalid credential, access_token is invalid or not latest",
    40002: "invalid grant_type",
    40003: "invalid openid",
    40008: "invalid message type",
    40013: "invalid appid",
    40016: "invalid button size",
    40017: "invalid button type",
    40018: "invalid button name size",
    40019: "invalid button key size",
    40023: "invalid sub button size",
    40037: "invalid template_id",
    40054: "invalid sub button url domain",
    40125: "invalid appsecret",
    41001: "access_token missing",
    42001: "access_token expired",
    43004: "require subscribe",
    43101: "user refuse to accept the msg",
    44002: "empty post data",
    45009: "reach max api daily quota limit",
    45011: "api minute-quota reach limit, must slower, retry next minute",
    45015: "response out of time limit or subscription is canceled",
    45028: "has no masssend quota",
    45047: "out of response count limit",
    45065: "clientmsgid exist",
    46003: "menu no exist",
    47001: "data format error",
    48001: "api unauthorized",
    48002: "api forbidden for irrelevant user",
}

ACTIVITIES = (*subscribers.ACTIVITIES, "unfollow", "view", "location", "block", "unblock",
              "refuse_templates", "accept_templates")
"""What :meth:`Platform.record` accepts: what the bot records of a subscriber, and what only the
platform sees."""

MESSAGE_TYPES = frozenset({"text", "image", "voice", "video", "music", "news", "mpnews",
                           "mpnewsarticle", "msgmenu", "wxcard", "miniprogrampage", "mpvideo"})


def refused(code: int, detail: str = "") -> ApiError:
    """The platform's error answer ``code``, with its ``errmsg`` (and ``detail``, if any)."""
    return ApiError(code, ERRORS.get(code, "error") + (f": {detail}" if detail else ""))


@dataclass
class Subscriber:
    """What the platform knows of one simulated subscriber."""

    openid: str
    name: str = ""
    following: bool = False
    blocked: bool = False
    refuses_templates: bool = False
    message_at: float | None = None
    message_sends: int = 0
    event_at: float | None = None
    event_sends: int = 0
    mass_by_month: dict[str, int] = field(default_factory=dict)


class Platform:
    """One official account as WeChat sees it."""

    def __init__(
        self,
        appid: str,
        appsecret: str,
        log: DeliveryLog,
        account_type: str = "subscription",
        timezone: str = "Asia/Shanghai",
        notify: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.appid, self.appsecret, self.log = appid, appsecret, log
        self.account_type, self.timezone = account_type, timezone
        self.notify = notify or (lambda fields: None)
        self.subscribers: dict[str, Subscriber] = {}
        self.menu: dict[str, Any] | None = None
        self._lock = threading.RLock()
        self._tokens: dict[str, float] = {}  # token -> when it stops working
        self._current = ""
        self._token_days: dict[str, int] = {}
        self._mass_calls: deque[float] = deque()
        self._mass_days: set[str] = set()
        self._clientmsgids: dict[str, float] = {}
        self._ids = itertools.count(int(clock.now()) % 10**6 * 1000 + 1000)

    # --- time ------------------------------------------------------------------------------------

    def _local(self, at: float) -> datetime:
        return datetime.fromtimestamp(at, ZoneInfo(self.timezone))

    # --- tokens ----------------------------------------------------------------------------------

    def issue_token(self, grant_type: str, appid: str, secret: str) -> dict[str, Any]:
        """``/cgi-bin/token``: a new access token; the previous one works :data:`TOKEN_GRACE` s."""
        if grant_type != "client_credential":
            raise refused(40002)
        if appid != self.appid:
            raise refused(40013)
        if secret != self.appsecret:
            raise refused(40125)
        now = clock.now()
        with self._lock:
            day = self._local(now).date().isoformat()
            if self._token_days.get(day, 0) >= TOKEN_DAILY_QUOTA:
                raise refused(45009)
            self._token_days[day] = self._token_days.get(day, 0) + 1
            if self._current:
                self._tokens[self._current] = min(self._tokens[self._current], now + TOKEN_GRACE)
            token = secrets.token_urlsafe(96)[:128]
            self._tokens[token] = now + TOKEN_LIFETIME
            self._current = token
        return {"access_token": token, "expires_in": TOKEN_LIFETIME}

    def check_token(self, token: str | None) -> None:
        """Raise 41001, 40001 or 42001 unless ``token`` works now."""
        if not token:
            raise refused(41001)
        with self._lock:
            until = self._tokens.get(token)
            if until is None:
                raise refused(40001)
            if clock.now() >= until:
                raise refused(42001 if token == self._current else 40001)

    # --- what subscribers do ---------------------------------------------------------------------

    def record(self, openid: str, kind: str, name: str = "", at: float | None = None) -> Subscriber:
        """Note that ``openid`` did ``kind`` (one of :data:`ACTIVITIES`) at ``at`` (default now)."""
        if kind not in ACTIVITIES:
            raise ValueError(f"unknown activity {kind!r}; expected one of {', '.join(ACTIVITIES)}")
        at = clock.now() if at is None else at
        with self._lock:
            sub = self.subscribers.setdefault(openid, Subscriber(openid))
            sub.name = name or sub.name
            if kind in ("follow", "unfollow"):
                sub.following = kind == "follow"
            if kind == "unfollow":
                sub.message_at = sub.event_at = None
            elif kind == "message":
                sub.message_at, sub.message_sends = at, 0
            elif kind in ("follow", "scan", "click"):
                sub.event_at, sub.event_sends = at, 0
            elif kind in ("block", "unblock"):
                sub.blocked = kind == "block"
            elif kind in ("refuse_templates", "accept_templates"):
                sub.refuses_templates = kind == "refuse_templates"
            return sub

    def _follower(self, openid: Any) -> Subscriber:
        sub = self.subscribers.get(openid) if isinstance(openid, str) else None
        if sub is None:
            raise refused(40003)
        if not sub.following:
            raise refused(43004)
        return sub

    # --- customer service ------------------------------------------------------------------------

    def send_custom(self, body: dict[str, Any]) -> dict[str, Any]:
        """``message/custom/send``: one message inside the subscriber's window."""
        msgtype, content = _message(body)
        now = clock.now()
        with self._lock:
            sub = self._follower(body.get("touser"))
            if sub.blocked:
                raise refused(48002)
            in_message = sub.message_at is not None and now - sub.message_at <= MESSAGE_WINDOW
            in_event = sub.event_at is not None and now - sub.event_at <= EVENT_WINDOW
            if in_message and sub.message_sends < MESSAGE_WINDOW_SENDS:
                sub.message_sends += 1
            elif in_event and sub.event_sends < EVENT_WINDOW_SENDS:
                sub.event_sends += 1
            elif in_message or in_event:
                raise refused(45047)
            else:
                raise refused(45015)
            self.log.write(now, sub.openid, sub.name, "custom", msgtype, content)
        return {"errcode": 0, "errmsg": "ok"}

    # --- mass send -------------------------------------------------------------------------------

    def send_mass(self, body: dict[str, Any], target: str) -> dict[str, Any]:
        """``message/mass/sendall`` (``target="all"``) or ``message/mass/send`` (``"list"``)."""
        msgtype, content = _message(body)
        now = clock.now()
        with self._lock:
            self._count_mass_call(now)
            clientmsgid = body.get("clientmsgid")
            if clientmsgid and now - self._clientmsgids.get(str(clientmsgid), -1e18) < \
                    CLIENTMSGID_MEMORY:
                raise refused(45065)
            if target == "all":
                if not isinstance(body.get("filter"), dict):
                    raise refused(47001, "filter is required")
                chosen = [s for s in self.subscribers.values() if s.following]
            else:
                openids = body.get("touser")
                if not isinstance(openids, list) or not openids:
                    raise refused(40003, "touser must be a list of openids")
                known = (self.subscribers.get(o) for o in openids if isinstance(o, str))
                chosen = [s for s in known if s is not None and s.following]
            day, month = self._local(now).date().isoformat(), self._local(now).strftime("%Y-%m")
            if self.account_type == "subscription":
                if day in self._mass_days:
                    raise refused(45028)
                reach = [s for s in chosen if not s.blocked]
            else:
                reach = [s for s in chosen if not s.blocked
                         and s.mass_by_month.get(month, 0) < SERVICE_MASS_PER_MONTH]
                if chosen and not reach:
                    raise refused(45028)
            if self.account_type == "subscription":
                self._mass_days.add(day)
            if clientmsgid:
                self._clientmsgids[str(clientmsgid)] = now
            msg_id = next(self._ids)
            for sub in reach:
                sub.mass_by_month[month] = sub.mass_by_month.get(month, 0) + 1
                self.log.write(now, sub.openid, sub.name, "mass", msgtype, content, msg_id=msg_id)
        self.notify({"Event": "MASSSENDJOBFINISH", "MsgID": msg_id, "Status": "send success",
                     "TotalCount": len(chosen), "FilterCount": len(reach),
                     "SentCount": len(reach), "ErrorCount": 0})
        answer: dict[str, Any] = {"errcode": 0, "errmsg": "send job submission success",
                                  "msg_id": msg_id}
        if msgtype == "mpnews":
            answer["msg_data_id"] = msg_id * 10 + 7
        return answer

    def preview_mass(self, body: dict[str, Any]) -> dict[str, Any]:
        """``message/mass/preview``: the message on one follower's phone, outside the quota."""
        msgtype, content = _message(body)
        now = clock.now()
        with self._lock:
            self._count_mass_call(now)
            sub = self._follower(body.get("touser"))
            msg_id = next(self._ids)
            self.log.write(now, sub.openid, sub.name, "preview", msgtype, content, msg_id=msg_id)
        return {"errcode": 0, "errmsg": "preview success", "msg_id": msg_id}

    def _count_mass_call(self, now: float) -> None:
        while self._mass_calls and now - self._mass_calls[0] >= 60:
            self._mass_calls.popleft()
        if len(self._mass_calls) >= MASS_PER_MINUTE:
            raise refused(45011)
        self._mass_calls.append(now)

    # --- templates -------------------------------------------------------------------------------

    def send_template(self, body: dict[str, Any]) -> dict[str, Any]:
        """``message/template/send``: service accounts only; the follower may refuse them."""
        if self.account_type != "service":
            raise refused(48001)
        template_id, data = body.get("template_id"), body.get("data")
        if not isinstance(template_id, str) or not template_id:
            raise refused(40037)
        if not isinstance(data, dict):
            raise refused(47001, "data must be an object")
        now = clock.now()
        with self._lock:
            sub = self._follower(body.get("touser"))
            if sub.refuses_templates:
                raise refused(43101)
            msgid = next(self._ids)
            lines = [f"{k}: {v.get('value', '') if isinstance(v, dict) else v}"
                     for k, v in data.items()]
            self.log.write(now, sub.openid, sub.name, "template", "template", "\n".join(lines),
                           template_id=template_id, url=body.get("url", ""), msg_id=msgid)
        self.notify({"Event": "TEMPLATESENDJOBFINISH", "MsgID": msgid, "Status": "success"})
        return {"errcode": 0, "errmsg": "ok", "msgid": msgid}

    # --- menu ------------------------------------------------------------------------------------

    def create_menu(self, body: dict[str, Any]) -> dict[str, Any]:
        """``menu/create``: check the platform's limits, then replace the menu."""
        buttons = body.get("button")
        if not isinstance(buttons, list) or not 1 <= len(buttons) <= MENU_TOP_BUTTONS:
            raise refused(40016)
        for button in buttons:
            _check_button(button, MENU_TOP_NAME_BYTES)
            subs = button.get("sub_button")
            if subs is not None:
                if not isinstance(subs, list) or len(subs) > MENU_SUB_BUTTONS:
                    raise refused(40023)
                for sub in subs:
                    _check_button(sub, MENU_SUB_NAME_BYTES)
        with self._lock:
            self.menu = {"button": buttons}
        return {"errcode": 0, "errmsg": "ok"}

    def get_menu(self) -> dict[str, Any]:
        """``menu/get``: the current menu, or 46003."""
        if self.menu is None:
            raise refused(46003)
        return {"menu": self.menu}

    def delete_menu(self) -> dict[str, Any]:
        """``menu/delete``."""
        self.menu = None
        return {"errcode": 0, "errmsg": "ok"}


def _message(body: dict[str, Any]) -> tuple[str, str]:
    """The ``msgtype`` of a send body and the text the delivery log shows for it."""
    msgtype = body.get("msgtype")
    if not isinstance(msgtype, str) or msgtype not in MESSAGE_TYPES:
        raise refused(40008)
    payload = body.get(msgtype)
    if not isinstance(payload, dict):
        raise refused(47001, f"{msgtype} must be an object")
    if msgtype == "text":
        content = payload.get("content")
        if not isinstance(content, str) or not content:
            raise refused(47001, "text.content is required")
        return msgtype, content
    if msgtype == "news":
        articles = payload.get("articles")
        if not isinstance(articles, list) or not articles or not isinstance(articles[0], dict):
            raise refused(47001, "news.articles is required")
        first = articles[0]
        return msgtype, f"{first.get('title', '')}\n{first.get('description', '')}".strip()
    return msgtype, json.dumps(payload, ensure_ascii=False)


def _check_button(button: Any, name_bytes: int) -> None:
    if not isinstance(button, dict):
        raise refused(40017)
    name = button.get("name")
    if not isinstance(name, str) or not 0 < len(name.encode()) <= name_bytes:
        raise refused(40018)
    if "sub_button" in button:
        return
    kind = button.get("type")
    if kind in ("click", "scancode_push", "scancode_waitmsg", "pic_sysphoto",
                "pic_photo_or_album", "pic_weixin", "location_select"):
        key = button.get("key")
        if not isinstance(key, str) or not 0 < len(key.encode()) <= MENU_KEY_BYTES:
            raise refused(40019)
    elif kind == "view":
        url = button.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")) \
                or len(url.encode()) > MENU_URL_BYTES:
            raise refused(40054)
    elif kind not in ("media_id", "article_id", "article_view_limited", "miniprogram"):
        raise refused(40017)
