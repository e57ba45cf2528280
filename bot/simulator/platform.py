"""The fake WeChat platform's rules, without HTTP: privileges, tokens, tags, windows and quotas.

:class:`Platform` answers what the real outbound API would (PLATFORM.md section 5), raising
:class:`~bot.wechat.api.ApiError` (the bot's own) with the real error codes. It knows what each
simulated subscriber did because the driver tells it (:meth:`Platform.record`), as WeChat knows.
Time is the installed clock (``bot.clock``), so windows and quotas follow virtual time; a "day"
is a calendar day in the account's time zone.

Rules simulated:

- privileges: the kind of account (subscription or service, verified or not) decides which APIs
  it may call, from the official table (:mod:`bot.wechat.privileges`); any other call is 48001.
  Token endpoints are open to every account.
- tokens: a new ``/cgi-bin/token`` retires the previous one after :data:`TOKEN_GRACE` s (then
  40001); a token lives 7200 s (then 42001); :data:`TOKEN_DAILY_QUOTA` calls a day (then 45009).
  The stable token (``/cgi-bin/stable_token``) is kept apart: see :meth:`Platform.stable_token`.
- customer service: 5 sends within 48 h of the subscriber's last message, 3 within 1 min of a
  follow, scan or menu click (45047 once used, 45015 outside both windows); 43004 when not
  following, 48002 when the subscriber turned messages off, 40003 for an unknown openid
- mass send: ``sendall`` reaches every follower (``is_to_all``) or the followers carrying a tag at
  the moment of the call (an unknown tag is -1, as WeChat answers it); ``send`` takes 2 to 10,000
  openids (40130). A subscription account succeeds once per day, a service account reaches a
  follower 4 times per calendar month (45028 when nothing is left); :data:`MASS_PER_MINUTE` calls
  a minute (45011); a repeated ``clientmsgid`` within 24 h is 45065; each send is confirmed by a
  MASSSENDJOBFINISH event handed to ``notify``; blocked subscribers are filtered out.
- user tags: at most :data:`TAG_LIMIT` an account (45056), names unique (45157) and within
  :data:`TAG_NAME_BYTES` bytes (45158), ids from :data:`TAG_FIRST_ID` (lower ones are the
  platform's: 45058); :data:`TAG_BATCH` openids a tagging call (40032), :data:`TAGS_PER_USER`
  tags a user (45059), unknown tag 45159, unknown or unfollowed openid 40003; daily quotas
  (:data:`TAG_DAILY_QUOTAS`, then 45009). A subscriber who unfollows keeps their tags (WeChat
  does not document what it does), but tag counts, member lists and sends cover followers only.
- template send: verified service accounts only, 43101 when the follower refuses them;
  confirmed by TEMPLATESENDJOBFINISH
- menu create/get/delete with the platform's button limits (400xx) and 46003 when none exists
- passive replies: the driver reports what the subscriber was shown (:meth:`Platform.show_reply`)
  and it goes to the delivery log as ``api: "reply"``

What it counts, for scenarios and benchmarks: :attr:`Platform.calls` (calls per API path, made by
the HTTP layer) and :attr:`Platform.refusals` (error answers per ``errcode``).
"""

from __future__ import annotations

import itertools
import json
import secrets
import threading
from collections import Counter, deque
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
from bot.wechat import privileges
from bot.wechat.api import ApiError

TOKEN_LIFETIME = 7200
TOKEN_GRACE = 300
"""Seconds the previous token keeps working after a new one is issued."""
TOKEN_DAILY_QUOTA = 2000

# The stable token, from WeChat's getStableAccessToken pages
# (https://developers.weixin.qq.com/doc/service/api/base/api_getstableaccesstoken and the mini-game
# page https://developers.weixin.qq.com/minigame/dev/api-backend/open-api/access-token/auth.getStableAccessToken.html):
# "普通模式，access_token 有效期内重复调用该接口不会更新 access_token";
# "平台会提前5分钟更新access_token ... 新旧access_token都可用 ...
# 有效期至少为5分钟，即expires_in >= 300";
# "强制刷新模式，会导致上次获取的 access_token 失效"; "该模式限制每天20次 ...
# 请保证调用时间隔至少为30s，否则不会刷新"; "每天限制调用 50万 次";
# "与 getAccessToken 获取的调用凭证完全隔离，互不影响".
STABLE_RENEW = 300
"""Seconds of life left at which a normal-mode call issues a new stable token (the old one keeps
working until its own expiry), so every answer's ``expires_in`` is at least this."""
STABLE_DAILY_QUOTA = 500_000
STABLE_FORCE_PER_DAY = 20
"""Force refreshes a day. What the platform answers past it is not documented: the simulator
answers 45009 (the platform's daily-quota code), an assumption."""
STABLE_FORCE_GAP = 30
"""Seconds between two force refreshes; a sooner one does not refresh ("否则不会刷新"): it
answers the current stable token unchanged."""

MESSAGE_WINDOW, MESSAGE_WINDOW_SENDS = 48 * 3600, 5
EVENT_WINDOW, EVENT_WINDOW_SENDS = 60, 3
MASS_PER_MINUTE = 60
SERVICE_MASS_PER_MONTH = 4
CLIENTMSGID_MEMORY = 24 * 3600
MASS_LIST_SIZE = (2, 10_000)
"""Openids one ``message/mass/send`` takes (40130 otherwise)."""

# User tags, from https://developers.weixin.qq.com/doc/offiaccount/User_Management/User_Tag_Management.html
# (and its per-API pages under /doc/service/api/usermanage/tag/): 100 tags an account, names of
# 30 bytes, 50 openids a batch, 20 tags a user; 45159 "invalid tag id" as WeChat answers it
# (https://developers.weixin.qq.com/community/develop/doc/0006a0ed570df009f33b47b9751c00).
TAG_LIMIT = 100
TAG_NAME_BYTES = 30
TAG_FIRST_ID = 100
"""The first id a created tag gets: 0-99 are the platform's (0, 1 and 2 are its own tags)."""
TAG_BATCH = 50
TAGS_PER_USER = 20
TAG_PAGE = 10_000
"""Openids one ``user/tag/get`` page carries at most."""
TAG_DELETE_MAX_FANS = 100_000
"""A tag with more followers cannot be deleted at once (45057)."""
TAG_DAILY_QUOTAS: dict[str, int] = {
    # WeChat's table of daily quotas (API_Call_Limits, https://developers.weixin.qq.com/doc/
    # service/Message_Management/API_Call_Limits.html) predates tags and still names the group
    # APIs tags replaced: 创建分组 1000, 获取分组 1000, 移动用户分组 100000. Applying them to
    # tags is an assumption (developers report 45009 from batchtagging and getidlist, with no
    # documented figure); tags/delete, user/tag/get and tags/getidlist have no row: 1000 assumed.
    "tags/create": 1000,  # 创建分组
    "tags/get": 1000,  # 获取分组
    "tags/delete": 1000,  # assumed
    "tags/members": 100_000,  # 移动用户分组: batchtagging and batchuntagging together
    "user/tag/get": 1000,  # assumed
    "tags/getidlist": 1000,  # assumed
}
"""Calls a day of each tag API (45009 past it)."""

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
    40032: "invalid openid list size",
    40037: "invalid template_id",
    40054: "invalid sub button url domain",
    40125: "invalid appsecret",
    40130: "invalid openid list size, at least two openid",
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
    45056: "too many tags",
    45057: "can't delete the tag that has too many fans",
    45058: "can't modify sys tag",
    45059: "too many tags of one user",
    45065: "clientmsgid exist",
    45157: "invalid tag name",
    45158: "tag name too long",
    45159: "invalid tag id",
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
    tags: list[int] = field(default_factory=list)


class Platform:
    """One official account as WeChat sees it.

    ``account_type`` (subscription or service) and ``verified`` are the kind of account played;
    the default, a verified subscription account, may call everything but ``mass/send`` and
    templates (``sim api`` passes config/account.yaml's kind).
    """

    def __init__(
        self,
        appid: str,
        appsecret: str,
        log: DeliveryLog,
        account_type: str = "subscription",
        timezone: str = "Asia/Shanghai",
        notify: Callable[[dict[str, Any]], None] | None = None,
        verified: bool = True,
    ) -> None:
        self.appid, self.appsecret, self.log = appid, appsecret, log
        self.account_type, self.verified, self.timezone = account_type, verified, timezone
        self.notify = notify or (lambda fields: None)
        self.subscribers: dict[str, Subscriber] = {}
        self.menu: dict[str, Any] | None = None
        self.tags: dict[int, str] = {}
        """The account's tags: id -> name."""
        self.calls: Counter[str] = Counter()
        """Calls per API path (``/cgi-bin/tags/create``...), refused ones included."""
        self.refusals: Counter[int] = Counter()
        """Error answers per ``errcode``."""
        self._lock = threading.RLock()
        self._tokens: dict[str, float] = {}  # token -> when it stops working
        self._current = ""  # the newest /cgi-bin/token
        self._stable = ""  # the current stable token
        self._stable_forced_at = -1e18
        self._daily: Counter[tuple[str, str]] = Counter()  # (quota, local day) -> calls
        self._next_tag_id = TAG_FIRST_ID
        self._mass_calls: deque[float] = deque()
        self._mass_days: set[str] = set()
        self._clientmsgids: dict[str, float] = {}
        self._ids = itertools.count(int(clock.now()) % 10**6 * 1000 + 1000)

    # --- time ------------------------------------------------------------------------------------

    def _local(self, at: float) -> datetime:
        return datetime.fromtimestamp(at, ZoneInfo(self.timezone))

    def _spend(self, quota: str, limit: int, now: float) -> None:
        """Count one call against the daily quota ``quota``; 45009 once ``limit`` were made."""
        key = (quota, self._local(now).date().isoformat())
        if self._daily[key] >= limit:
            raise refused(45009)
        self._daily[key] += 1

    # --- what the account may call and what it was answered ---------------------------------------

    def require(self, capability: privileges.Capability) -> None:
        """Raise 48001 unless this kind of account may call the APIs of ``capability``."""
        if not privileges.allowed(capability, self.account_type, self.verified):
            kind = privileges.describe(self.account_type, self.verified)
            raise refused(48001, f"not open to this {kind}")

    def count_call(self, path: str) -> None:
        """Note one call of the API at ``path``."""
        with self._lock:
            self.calls[path] += 1

    def count_refusal(self, code: int) -> None:
        """Note one error answer with ``errcode`` ``code``."""
        with self._lock:
            self.refusals[code] += 1

    def counts(self) -> tuple[dict[str, int], dict[int, int]]:
        """A consistent copy of :attr:`calls` and :attr:`refusals`."""
        with self._lock:
            return dict(self.calls), dict(self.refusals)

    # --- tokens ----------------------------------------------------------------------------------

    def _check_credentials(self, grant_type: Any, appid: Any, secret: Any) -> None:
        if grant_type != "client_credential":
            raise refused(40002)
        if appid != self.appid:
            raise refused(40013)
        if secret != self.appsecret:
            raise refused(40125)

    def _new_token(self, now: float) -> str:
        token = secrets.token_urlsafe(96)[:128]
        self._tokens[token] = now + TOKEN_LIFETIME
        return token

    def issue_token(self, grant_type: str, appid: str, secret: str) -> dict[str, Any]:
        """``/cgi-bin/token``: a new access token; the previous one works :data:`TOKEN_GRACE` s."""
        self._check_credentials(grant_type, appid, secret)
        now = clock.now()
        with self._lock:
            self._spend("token", TOKEN_DAILY_QUOTA, now)
            if self._current:
                self._tokens[self._current] = min(self._tokens[self._current], now + TOKEN_GRACE)
            token = self._current = self._new_token(now)
        return {"access_token": token, "expires_in": TOKEN_LIFETIME}

    def stable_token(self, grant_type: Any, appid: Any, secret: Any,
                     force_refresh: bool = False) -> dict[str, Any]:
        """``/cgi-bin/stable_token``: the stable token, apart from ``/cgi-bin/token``'s.

        Normal mode answers the current stable token with its remaining life while more than
        :data:`STABLE_RENEW` s are left, else a new one (the old one works until its own expiry).
        ``force_refresh`` issues a new one and the previous stops working at once; a second one
        within :data:`STABLE_FORCE_GAP` s does not refresh, past :data:`STABLE_FORCE_PER_DAY`
        a day it is 45009 (see the constants for the sources).
        """
        self._check_credentials(grant_type, appid, secret)
        now = clock.now()
        with self._lock:
            self._spend("stable_token", STABLE_DAILY_QUOTA, now)
            current = self._stable
            left = self._tokens.get(current, now) - now
            if force_refresh and now - self._stable_forced_at < STABLE_FORCE_GAP and left > 0:
                return {"access_token": current, "expires_in": int(left)}
            if force_refresh:
                self._spend("stable_force", STABLE_FORCE_PER_DAY, now)
                self._stable_forced_at = now
                self._tokens.pop(current, None)
            elif left > STABLE_RENEW:
                return {"access_token": current, "expires_in": int(left)}
            token = self._stable = self._new_token(now)
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
                raise refused(42001 if token in (self._current, self._stable) else 40001)

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

    def show_reply(self, openid: str, name: str, msgtype: str, content: str,
                   at: float | None = None) -> dict[str, Any]:
        """Log the passive reply WeChat showed ``openid`` at ``at`` (default now) as ``reply``."""
        at = clock.now() if at is None else at
        with self._lock:
            sub = self.subscribers.get(openid)
            user = name or (sub.name if sub else "")
            return self.log.write(at, openid, user, "reply", msgtype, content)

    # --- customer service ------------------------------------------------------------------------

    def send_custom(self, body: dict[str, Any]) -> dict[str, Any]:
        """``message/custom/send``: one message inside the subscriber's window."""
        self.require("custom")
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
        """``message/mass/sendall`` (``target="all"``) or ``message/mass/send`` (``"list"``).

        ``sendall`` reaches every follower (``filter.is_to_all``) or the followers carrying
        ``filter.tag_id`` at the moment of the call; ``send``, the followers among ``touser``.
        """
        self.require("mass_all" if target == "all" else "mass_list")
        msgtype, content = _message(body)
        now = clock.now()
        with self._lock:
            self._count_mass_call(now)
            clientmsgid = body.get("clientmsgid")
            if clientmsgid and now - self._clientmsgids.get(str(clientmsgid), -1e18) < \
                    CLIENTMSGID_MEMORY:
                raise refused(45065)
            chosen = self._audience(body) if target == "all" else self._listed(body)
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

    def _audience(self, body: dict[str, Any]) -> list[Subscriber]:
        """The followers a ``sendall`` filter names: all, or a tag's members now."""
        audience = body.get("filter")
        if not isinstance(audience, dict):
            raise refused(47001, "filter is required")
        followers = [s for s in self.subscribers.values() if s.following]
        if audience.get("is_to_all") is True:
            return followers
        tag_id = audience.get("tag_id")
        if not _is_int(tag_id):
            raise refused(47001, "filter.tag_id is required unless is_to_all is true")
        if tag_id not in self.tags:
            # WeChat answers an unknown tag_id with "system error" (-1): its community support
            # says so (https://developers.weixin.qq.com/community/develop/doc/000e2422a78b9071488d90d9652000).
            raise refused(-1, f"no tag {tag_id}")
        return [s for s in followers if tag_id in s.tags]

    def _listed(self, body: dict[str, Any]) -> list[Subscriber]:
        """The followers among a ``mass/send``'s ``touser`` (2 to 10,000 openids, else 40130)."""
        openids = body.get("touser")
        if not isinstance(openids, list):
            raise refused(47001, "touser must be a list of openids")
        low, high = MASS_LIST_SIZE
        if not low <= len(openids) <= high:
            raise refused(40130, f"{len(openids)} openids, not {low} to {high}")
        known = (self.subscribers.get(o) for o in openids if isinstance(o, str))
        return [s for s in known if s is not None and s.following]

    def preview_mass(self, body: dict[str, Any]) -> dict[str, Any]:
        """``message/mass/preview``: the message on one follower's phone, outside the quota."""
        self.require("mass_all")
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
        """``message/template/send``: verified service accounts; the follower may refuse them."""
        self.require("template")
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
        self.require("menu")
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
        self.require("menu")
        if self.menu is None:
            raise refused(46003)
        return {"menu": self.menu}

    def delete_menu(self) -> dict[str, Any]:
        """``menu/delete``."""
        self.require("menu")
        self.menu = None
        return {"errcode": 0, "errmsg": "ok"}

    # --- user tags -------------------------------------------------------------------------------

    def _tag_call(self, quota: str, now: float) -> None:
        """What every tag API checks first: the account may call it, and its daily quota."""
        self.require("tags")
        self._spend(quota, TAG_DAILY_QUOTAS[quota], now)

    def _tag(self, tag_id: Any) -> int:
        """``tag_id`` if the account has that tag, else 45159."""
        if not _is_int(tag_id) or tag_id not in self.tags:
            raise refused(45159, f"no tag {tag_id!r}")
        return tag_id

    def _fan(self, openid: Any) -> Subscriber:
        """The follower ``openid``; 40003 for an unknown openid or one that does not follow."""
        sub = self.subscribers.get(openid) if isinstance(openid, str) else None
        if sub is None or not sub.following:
            raise refused(40003)
        return sub

    def _members(self, tag_id: int) -> list[Subscriber]:
        return [s for s in self.subscribers.values() if s.following and tag_id in s.tags]

    def create_tag(self, body: dict[str, Any]) -> dict[str, Any]:
        """``tags/create`` ``{"tag": {"name"}}`` -> ``{"tag": {"id", "name"}}``."""
        with self._lock:
            self._tag_call("tags/create", clock.now())
            tag = body.get("tag")
            name = tag.get("name") if isinstance(tag, dict) else None
            if not isinstance(name, str) or not name.strip():
                raise refused(45157, "tag.name is required")
            if len(name.encode("utf-8")) > TAG_NAME_BYTES:
                raise refused(45158, f"over {TAG_NAME_BYTES} bytes")
            if name in self.tags.values():
                raise refused(45157, f"a tag is already called {name!r}")
            if len(self.tags) >= TAG_LIMIT:
                raise refused(45056, f"at most {TAG_LIMIT}")
            tag_id, self._next_tag_id = self._next_tag_id, self._next_tag_id + 1
            self.tags[tag_id] = name
        return {"tag": {"id": tag_id, "name": name}}

    def get_tags(self) -> dict[str, Any]:
        """``tags/get`` -> ``{"tags": [{"id", "name", "count"}]}`` (count: followers)."""
        with self._lock:
            self._tag_call("tags/get", clock.now())
            return {"tags": [{"id": i, "name": n, "count": len(self._members(i))}
                             for i, n in self.tags.items()]}

    def delete_tag(self, body: dict[str, Any]) -> dict[str, Any]:
        """``tags/delete`` ``{"tag": {"id"}}``: the tag leaves every subscriber too."""
        with self._lock:
            self._tag_call("tags/delete", clock.now())
            tag = body.get("tag")
            tag_id = tag.get("id") if isinstance(tag, dict) else None
            if _is_int(tag_id) and 0 <= tag_id < TAG_FIRST_ID:
                raise refused(45058)
            tag_id = self._tag(tag_id)
            if len(self._members(tag_id)) > TAG_DELETE_MAX_FANS:
                raise refused(45057)
            del self.tags[tag_id]
            for sub in self.subscribers.values():
                if tag_id in sub.tags:
                    sub.tags.remove(tag_id)
        return {"errcode": 0, "errmsg": "ok"}

    def tag_members(self, body: dict[str, Any], add: bool = True) -> dict[str, Any]:
        """``tags/members/batchtagging`` (``add``) or ``batchuntagging``: all or nothing."""
        with self._lock:
            self._tag_call("tags/members", clock.now())
            openids = body.get("openid_list")
            if not isinstance(openids, list) or not 1 <= len(openids) <= TAG_BATCH:
                raise refused(40032, f"openid_list takes 1 to {TAG_BATCH} openids")
            tag_id = self._tag(body.get("tagid"))
            subs = [self._fan(openid) for openid in openids]
            if add and any(tag_id not in s.tags and len(s.tags) >= TAGS_PER_USER for s in subs):
                raise refused(45059, f"a user carries at most {TAGS_PER_USER} tags")
            for sub in subs:
                if add and tag_id not in sub.tags:
                    sub.tags.append(tag_id)
                elif not add and tag_id in sub.tags:
                    sub.tags.remove(tag_id)
        return {"errcode": 0, "errmsg": "ok"}

    def tag_page(self, body: dict[str, Any]) -> dict[str, Any]:
        """``user/tag/get`` ``{"tagid", "next_openid"}``: one page of the tag's followers."""
        with self._lock:
            self._tag_call("user/tag/get", clock.now())
            members = [s.openid for s in self._members(self._tag(body.get("tagid")))]
            after = body.get("next_openid") or ""
            if after and after not in members:
                raise refused(40003, "next_openid is not in the tag")
            start = members.index(after) + 1 if after else 0
            page = members[start:start + TAG_PAGE]
        return {"count": len(page), "data": {"openid": page},
                "next_openid": page[-1] if page else ""}

    def tags_of(self, body: dict[str, Any]) -> dict[str, Any]:
        """``tags/getidlist`` ``{"openid"}`` -> ``{"tagid_list": [...]}``."""
        with self._lock:
            self._tag_call("tags/getidlist", clock.now())
            return {"tagid_list": list(self._fan(body.get("openid")).tags)}


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


def _is_int(value: Any) -> bool:
    """Whether a JSON value is an integer (``true`` is not)."""
    return isinstance(value, int) and not isinstance(value, bool)


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
