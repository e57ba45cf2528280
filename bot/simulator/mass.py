"""The fake platform's mass sends: ``message/mass/sendall``, ``message/mass/send`` and
``message/mass/preview``, who each reaches and the quotas they spend.

Rules simulated (the platform first checks that the account may call them: 48001):

- ``sendall`` reaches every follower (``is_to_all``) or the followers carrying a tag at the moment
  of the call (an unknown tag is -1, as WeChat answers it); ``send`` takes 2 to 10,000 openids
  (:data:`MASS_LIST_SIZE`, else 40130). Blocked subscribers are filtered out.
- a subscription account succeeds once per day, a service account reaches a follower
  :data:`SERVICE_MASS_PER_MONTH` times per calendar month (45028 when nothing is left);
  :data:`MASS_PER_MINUTE` calls a minute, previews included (45011); a repeated ``clientmsgid``
  within :data:`CLIENTMSGID_MEMORY` s is 45065.
- each send is confirmed by a MASSSENDJOBFINISH event (the platform hands it to ``notify``); each
  subscriber reached gets one ``mass`` line in the delivery log, a preview one ``preview`` line.
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from typing import Any

from bot import clock
from bot.simulator import bodies
from bot.simulator.deliveries import DeliveryLog
from bot.simulator.errors import refused
from bot.simulator.quotas import DailyQuotas
from bot.simulator.subscriber import Subscriber, follower
from bot.simulator.tags import Tags

MASS_PER_MINUTE = 60
SERVICE_MASS_PER_MONTH = 4
CLIENTMSGID_MEMORY = 24 * 3600
MASS_LIST_SIZE = (2, 10_000)
"""Openids one ``message/mass/send`` takes (40130 otherwise)."""


class MassSends:
    """One account's mass sends and the quotas they spent.

    ``subscribers``, ``tags``, ``log``, ``quotas`` (for the account's calendar), ``ids`` (message
    ids, shared with template sends) and ``lock`` are the platform's.
    """

    def __init__(self, subscribers: dict[str, Subscriber], tags: Tags, log: DeliveryLog,
                 quotas: DailyQuotas, ids: itertools.count[int], lock: threading.RLock) -> None:
        self._subscribers, self._tags, self._log = subscribers, tags, log
        self._quotas, self._ids, self._lock = quotas, ids, lock
        self._calls: deque[float] = deque()
        self._days: set[str] = set()
        self._clientmsgids: dict[str, float] = {}

    def send(self, body: dict[str, Any], target: str,
             account_type: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """``sendall`` (``target="all"``) or ``send`` (``"list"``): the answer, and the fields of
        the MASSSENDJOBFINISH event that confirms it.

        ``sendall`` reaches every follower (``filter.is_to_all``) or the followers carrying
        ``filter.tag_id`` at the moment of the call; ``send``, the followers among ``touser``.
        """
        msgtype, content = bodies.message(body)
        now = clock.now()
        with self._lock:
            self._count_call(now)
            clientmsgid = body.get("clientmsgid")
            if clientmsgid and now - self._clientmsgids.get(str(clientmsgid), -1e18) < \
                    CLIENTMSGID_MEMORY:
                raise refused(45065)
            chosen = self._audience(body) if target == "all" else self._listed(body)
            local = self._quotas.local(now)
            day, month = local.date().isoformat(), local.strftime("%Y-%m")
            if account_type == "subscription":
                if day in self._days:
                    raise refused(45028)
                reach = [s for s in chosen if not s.blocked]
            else:
                reach = [s for s in chosen if not s.blocked
                         and s.mass_by_month.get(month, 0) < SERVICE_MASS_PER_MONTH]
                if chosen and not reach:
                    raise refused(45028)
            if account_type == "subscription":
                self._days.add(day)
            if clientmsgid:
                self._clientmsgids[str(clientmsgid)] = now
            msg_id = next(self._ids)
            for sub in reach:
                sub.mass_by_month[month] = sub.mass_by_month.get(month, 0) + 1
                self._log.write(now, sub.openid, sub.name, "mass", msgtype, content, msg_id=msg_id)
        event = {"Event": "MASSSENDJOBFINISH", "MsgID": msg_id, "Status": "send success",
                 "TotalCount": len(chosen), "FilterCount": len(reach),
                 "SentCount": len(reach), "ErrorCount": 0}
        answer: dict[str, Any] = {"errcode": 0, "errmsg": "send job submission success",
                                  "msg_id": msg_id}
        if msgtype == "mpnews":
            answer["msg_data_id"] = msg_id * 10 + 7
        return answer, event

    def _audience(self, body: dict[str, Any]) -> list[Subscriber]:
        """The followers a ``sendall`` filter names: all, or a tag's members now."""
        audience = body.get("filter")
        if not isinstance(audience, dict):
            raise refused(47001, "filter is required")
        if audience.get("is_to_all") is True:
            return [s for s in self._subscribers.values() if s.following]
        tag_id = audience.get("tag_id")
        if not bodies.is_int(tag_id):
            raise refused(47001, "filter.tag_id is required unless is_to_all is true")
        if tag_id not in self._tags.names:
            # WeChat answers an unknown tag_id with "system error" (-1): its community support
            # says so (https://developers.weixin.qq.com/community/develop/doc/000e2422a78b9071488d90d9652000).
            raise refused(-1, f"no tag {tag_id}")
        return self._tags.followers(tag_id)

    def _listed(self, body: dict[str, Any]) -> list[Subscriber]:
        """The followers among a ``mass/send``'s ``touser`` (2 to 10,000 openids, else 40130)."""
        openids = body.get("touser")
        if not isinstance(openids, list):
            raise refused(47001, "touser must be a list of openids")
        low, high = MASS_LIST_SIZE
        if not low <= len(openids) <= high:
            raise refused(40130, f"{len(openids)} openids, not {low} to {high}")
        known = (self._subscribers.get(o) for o in openids if isinstance(o, str))
        return [s for s in known if s is not None and s.following]

    def preview(self, body: dict[str, Any]) -> dict[str, Any]:
        """``message/mass/preview``: the message on one follower's phone, outside the quota."""
        msgtype, content = bodies.message(body)
        now = clock.now()
        with self._lock:
            self._count_call(now)
            sub = follower(self._subscribers, body.get("touser"))
            msg_id = next(self._ids)
            self._log.write(now, sub.openid, sub.name, "preview", msgtype, content, msg_id=msg_id)
        return {"errcode": 0, "errmsg": "preview success", "msg_id": msg_id}

    def _count_call(self, now: float) -> None:
        """Count one call against :data:`MASS_PER_MINUTE` (45011 past it)."""
        while self._calls and now - self._calls[0] >= 60:
            self._calls.popleft()
        if len(self._calls) >= MASS_PER_MINUTE:
            raise refused(45011)
        self._calls.append(now)
