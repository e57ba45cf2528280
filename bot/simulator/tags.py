"""The fake platform's user tags: ``tags/create``, ``tags/get``, ``tags/delete``, tagging and
untagging in batches, a tag's followers page by page, a follower's tags, and their quotas.

Rules simulated (the platform first checks that the account may use tags: 48001):

- at most :data:`TAG_LIMIT` tags an account (45056), names unique (45157) and within
  :data:`TAG_NAME_BYTES` bytes (45158), ids from :data:`TAG_FIRST_ID` (lower ones are the
  platform's: 45058); a tag with over :data:`TAG_DELETE_MAX_FANS` followers cannot be deleted
  (45057)
- :data:`TAG_BATCH` openids a tagging call (40032), all or nothing; :data:`TAGS_PER_USER` tags a
  user (45059); unknown tag 45159, unknown or unfollowed openid 40003
- ``user/tag/get`` pages of :data:`TAG_PAGE` openids, continued after ``next_openid``
- daily quotas (:data:`TAG_DAILY_QUOTAS`, then 45009)

A subscriber who unfollows keeps their tags (WeChat does not document what it does), but tag
counts, member lists and sends cover followers only.
"""

from __future__ import annotations

import threading
from typing import Any

from bot import clock
from bot.simulator.bodies import is_int
from bot.simulator.errors import refused
from bot.simulator.quotas import DailyQuotas
from bot.simulator.subscriber import Subscriber

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


class Tags:
    """One account's user tags; each :class:`~bot.simulator.subscriber.Subscriber` carries its own.

    ``subscribers``, ``quotas`` and ``lock`` are the platform's: its subscribers by openid, its
    daily quotas and the lock over its state.
    """

    def __init__(self, subscribers: dict[str, Subscriber], quotas: DailyQuotas,
                 lock: threading.RLock) -> None:
        self.names: dict[int, str] = {}
        """The account's tags: id -> name."""
        self._subscribers, self._quotas, self._lock = subscribers, quotas, lock
        self._next_id = TAG_FIRST_ID

    def followers(self, tag_id: int) -> list[Subscriber]:
        """The followers carrying ``tag_id`` now (what counts, pages and sends cover)."""
        return [s for s in self._subscribers.values() if s.following and tag_id in s.tags]

    def _spend(self, quota: str) -> None:
        self._quotas.spend(quota, TAG_DAILY_QUOTAS[quota], clock.now())

    def _tag(self, tag_id: Any) -> int:
        """``tag_id`` if the account has that tag, else 45159."""
        if not is_int(tag_id) or tag_id not in self.names:
            raise refused(45159, f"no tag {tag_id!r}")
        return tag_id

    def _fan(self, openid: Any) -> Subscriber:
        """The follower ``openid``; 40003 for an unknown openid or one that does not follow."""
        sub = self._subscribers.get(openid) if isinstance(openid, str) else None
        if sub is None or not sub.following:
            raise refused(40003)
        return sub

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        """``tags/create`` ``{"tag": {"name"}}`` -> ``{"tag": {"id", "name"}}``."""
        with self._lock:
            self._spend("tags/create")
            tag = body.get("tag")
            name = tag.get("name") if isinstance(tag, dict) else None
            if not isinstance(name, str) or not name.strip():
                raise refused(45157, "tag.name is required")
            if len(name.encode("utf-8")) > TAG_NAME_BYTES:
                raise refused(45158, f"over {TAG_NAME_BYTES} bytes")
            if name in self.names.values():
                raise refused(45157, f"a tag is already called {name!r}")
            if len(self.names) >= TAG_LIMIT:
                raise refused(45056, f"at most {TAG_LIMIT}")
            tag_id, self._next_id = self._next_id, self._next_id + 1
            self.names[tag_id] = name
        return {"tag": {"id": tag_id, "name": name}}

    def get(self) -> dict[str, Any]:
        """``tags/get`` -> ``{"tags": [{"id", "name", "count"}]}`` (count: followers)."""
        with self._lock:
            self._spend("tags/get")
            return {"tags": [{"id": i, "name": n, "count": len(self.followers(i))}
                             for i, n in self.names.items()]}

    def delete(self, body: dict[str, Any]) -> dict[str, Any]:
        """``tags/delete`` ``{"tag": {"id"}}``: the tag leaves every subscriber too."""
        with self._lock:
            self._spend("tags/delete")
            tag = body.get("tag")
            tag_id = tag.get("id") if isinstance(tag, dict) else None
            if is_int(tag_id) and 0 <= tag_id < TAG_FIRST_ID:
                raise refused(45058)
            tag_id = self._tag(tag_id)
            if len(self.followers(tag_id)) > TAG_DELETE_MAX_FANS:
                raise refused(45057)
            del self.names[tag_id]
            for sub in self._subscribers.values():
                if tag_id in sub.tags:
                    sub.tags.remove(tag_id)
        return {"errcode": 0, "errmsg": "ok"}

    def tagging(self, body: dict[str, Any], add: bool = True) -> dict[str, Any]:
        """``tags/members/batchtagging`` (``add``) or ``batchuntagging``: all or nothing."""
        with self._lock:
            self._spend("tags/members")
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

    def page(self, body: dict[str, Any]) -> dict[str, Any]:
        """``user/tag/get`` ``{"tagid", "next_openid"}``: one page of the tag's followers."""
        with self._lock:
            self._spend("user/tag/get")
            members = [s.openid for s in self.followers(self._tag(body.get("tagid")))]
            after = body.get("next_openid") or ""
            if after and after not in members:
                raise refused(40003, "next_openid is not in the tag")
            start = members.index(after) + 1 if after else 0
            page = members[start:start + TAG_PAGE]
        return {"count": len(page), "data": {"openid": page},
                "next_openid": page[-1] if page else ""}

    def of(self, body: dict[str, Any]) -> dict[str, Any]:
        """``tags/getidlist`` ``{"openid"}`` -> ``{"tagid_list": [...]}``."""
        with self._lock:
            self._spend("tags/getidlist")
            return {"tagid_list": list(self._fan(body.get("openid")).tags)}
