"""The fake WeChat platform, without HTTP: one official account as WeChat sees it.

:class:`Platform` answers what the real outbound API would (PLATFORM.md section 5), raising
:class:`~bot.wechat.api.ApiError` (the bot's own) with the real error codes
(:mod:`~bot.simulator.errors`). It knows what each simulated subscriber did because the driver
tells it (:meth:`Platform.record`, :mod:`~bot.simulator.subscriber`), as WeChat knows. Time is the
installed clock (``bot.clock``), so windows and quotas follow virtual time; a "day" is a calendar
day in the account's time zone (:mod:`~bot.simulator.quotas`).

It holds the subscribers and composes the rules kept in their own modules, each reached through a
thin method of its own name here: the access tokens (:mod:`~bot.simulator.tokens`), the user tags
(:mod:`~bot.simulator.tags`), mass sends (:mod:`~bot.simulator.mass`); request bodies are read by
:mod:`~bot.simulator.bodies`.

Rules simulated here:

- privileges: the kind of account (subscription or service, verified or not) decides which APIs
  it may call, from the official table (:mod:`bot.wechat.privileges`); any other call is 48001.
  Token endpoints are open to every account.
- customer service: 5 sends within 48 h of the subscriber's last message, 3 within 1 min of a
  follow, scan or menu click (45047 once used, 45015 outside both windows); 43004 when not
  following, 48002 when the subscriber turned messages off, 40003 for an unknown openid
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
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

from bot import clock
from bot.simulator import bodies
from bot.simulator.deliveries import DeliveryLog
from bot.simulator.errors import ERRORS, refused
from bot.simulator.mass import MASS_PER_MINUTE, MassSends
from bot.simulator.quotas import DailyQuotas
from bot.simulator.subscriber import ACTIVITIES, Subscriber, follower
from bot.simulator.tags import (
    TAG_BATCH,
    TAG_FIRST_ID,
    TAG_LIMIT,
    TAGS_PER_USER,
    Tags,
)
from bot.simulator.tokens import (
    STABLE_FORCE_GAP,
    STABLE_FORCE_PER_DAY,
    STABLE_RENEW,
    TOKEN_DAILY_QUOTA,
    TOKEN_GRACE,
    Tokens,
)
from bot.wechat import privileges
from bot.wechat.api import ApiError

__all__ = [
    "ACTIVITIES", "ERRORS", "ApiError", "Platform", "Subscriber", "refused",
    # importable from here as before the rules moved to their own modules
    "MASS_PER_MINUTE", "STABLE_FORCE_GAP", "STABLE_FORCE_PER_DAY", "STABLE_RENEW", "TAG_BATCH",
    "TAG_FIRST_ID", "TAG_LIMIT", "TAGS_PER_USER", "TOKEN_DAILY_QUOTA", "TOKEN_GRACE",
]

MESSAGE_WINDOW, MESSAGE_WINDOW_SENDS = 48 * 3600, 5
EVENT_WINDOW, EVENT_WINDOW_SENDS = 60, 3


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
        self.calls: Counter[str] = Counter()
        """Calls per API path (``/cgi-bin/tags/create``...), refused ones included."""
        self.refusals: Counter[int] = Counter()
        """Error answers per ``errcode``."""
        self._lock = threading.RLock()  # over every part's state: they share the subscribers
        self._ids = itertools.count(int(clock.now()) % 10**6 * 1000 + 1000)  # message ids
        quotas = DailyQuotas(timezone)
        self._tokens = Tokens(appid, appsecret, quotas, self._lock)
        self._tags = Tags(self.subscribers, quotas, self._lock)
        self._mass = MassSends(self.subscribers, self._tags, log, quotas, self._ids, self._lock)

    @property
    def tags(self) -> dict[int, str]:
        """The account's tags: id -> name."""
        return self._tags.names

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

    # --- tokens: bot.simulator.tokens ------------------------------------------------------------

    def issue_token(self, grant_type: str, appid: str, secret: str) -> dict[str, Any]:
        """``/cgi-bin/token``: see :meth:`~bot.simulator.tokens.Tokens.issue`."""
        return self._tokens.issue(grant_type, appid, secret)

    def stable_token(self, grant_type: Any, appid: Any, secret: Any,
                     force_refresh: bool = False) -> dict[str, Any]:
        """``/cgi-bin/stable_token``: see :meth:`~bot.simulator.tokens.Tokens.stable`."""
        return self._tokens.stable(grant_type, appid, secret, force_refresh)

    def check_token(self, token: str | None) -> None:
        """Raise 41001, 40001 or 42001 unless ``token`` works now."""
        self._tokens.check(token)

    # --- what subscribers do ---------------------------------------------------------------------

    def record(self, openid: str, kind: str, name: str = "", at: float | None = None) -> Subscriber:
        """Note that ``openid`` did ``kind`` (one of :data:`ACTIVITIES`) at ``at`` (default now)."""
        if kind not in ACTIVITIES:
            raise ValueError(f"unknown activity {kind!r}; expected one of {', '.join(ACTIVITIES)}")
        at = clock.now() if at is None else at
        with self._lock:
            sub = self.subscribers.setdefault(openid, Subscriber(openid))
            sub.name = name or sub.name
            sub.note(kind, at)
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
        msgtype, content = bodies.message(body)
        now = clock.now()
        with self._lock:
            sub = follower(self.subscribers, body.get("touser"))
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

    # --- mass send: bot.simulator.mass -----------------------------------------------------------

    def send_mass(self, body: dict[str, Any], target: str) -> dict[str, Any]:
        """``message/mass/sendall`` (``target="all"``) or ``message/mass/send`` (``"list"``),
        confirmed to ``notify``: see :meth:`~bot.simulator.mass.MassSends.send`."""
        self.require("mass_all" if target == "all" else "mass_list")
        answer, event = self._mass.send(body, target, self.account_type)
        self.notify(event)
        return answer

    def preview_mass(self, body: dict[str, Any]) -> dict[str, Any]:
        """``message/mass/preview``: see :meth:`~bot.simulator.mass.MassSends.preview`."""
        self.require("mass_all")
        return self._mass.preview(body)

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
            sub = follower(self.subscribers, body.get("touser"))
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
        """``menu/create``: check the platform's limits (:func:`.bodies.menu_buttons`), then
        replace the menu."""
        self.require("menu")
        buttons = bodies.menu_buttons(body)
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

    # --- user tags: bot.simulator.tags (each API checks the account may use tags first) ----------

    def tagged(self, tag_id: int) -> list[Subscriber]:
        """The followers carrying ``tag_id`` now (what tag counts, pages and sends cover)."""
        return self._tags.followers(tag_id)

    def create_tag(self, body: dict[str, Any]) -> dict[str, Any]:
        """``tags/create``: see :meth:`~bot.simulator.tags.Tags.create`."""
        self.require("tags")
        return self._tags.create(body)

    def get_tags(self) -> dict[str, Any]:
        """``tags/get``: see :meth:`~bot.simulator.tags.Tags.get`."""
        self.require("tags")
        return self._tags.get()

    def delete_tag(self, body: dict[str, Any]) -> dict[str, Any]:
        """``tags/delete``: see :meth:`~bot.simulator.tags.Tags.delete`."""
        self.require("tags")
        return self._tags.delete(body)

    def tag_members(self, body: dict[str, Any], add: bool = True) -> dict[str, Any]:
        """``tags/members/batchtagging`` or ``batchuntagging``: see
        :meth:`~bot.simulator.tags.Tags.tagging`."""
        self.require("tags")
        return self._tags.tagging(body, add)

    def tag_page(self, body: dict[str, Any]) -> dict[str, Any]:
        """``user/tag/get``: see :meth:`~bot.simulator.tags.Tags.page`."""
        self.require("tags")
        return self._tags.page(body)

    def tags_of(self, body: dict[str, Any]) -> dict[str, Any]:
        """``tags/getidlist``: see :meth:`~bot.simulator.tags.Tags.of`."""
        self.require("tags")
        return self._tags.of(body)
