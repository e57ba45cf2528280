"""The fake API's delivery log: every message WeChat showed a subscriber, as JSON lines and a feed.

One JSON object a line, appended to a file whose path the ``sim api`` command prints; ``time`` is
the virtual time with milliseconds and the account's offset::

    {"seq": 3, "time": "2026-11-22T09:00:00.123+08:00", "openid": "o...", "user": "alice",
     "api": "custom", "msgtype": "text", "content": "..."}

``api`` is ``custom``, ``mass``, ``preview``, ``template`` or ``reply``; a mass send writes one line
per recipient it reaches (with its ``msg_id``); ``reply`` is a passive reply (``msgtype`` text or
news; a news ``content`` is the article's title, description and URL, one a line), logged when the
driver reports it. The same entries stay in memory (numbered by ``seq``) so the chat page and
``sim chat`` can show pushes as they arrive: :meth:`DeliveryLog.since` and :meth:`DeliveryLog.wait`
(their push feeds leave ``reply`` entries out: the exchange itself shows the reply).
"""

from __future__ import annotations

import json
import threading
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

KEPT_IN_MEMORY = 5000
"""How many recent entries the live feed keeps (the file keeps them all)."""


def iso_time(seconds: float, timezone: str, timespec: str = "seconds") -> str:
    """``seconds`` since the epoch as ISO 8601 with the offset of ``timezone``, to ``timespec``
    (``seconds`` or ``milliseconds``: truncated, as :meth:`datetime.isoformat` does)."""
    return datetime.fromtimestamp(seconds, ZoneInfo(timezone)).isoformat(timespec=timespec)


class DeliveryLog:
    """Append-only record of accepted messages; thread-safe."""

    def __init__(self, path: Path | None, timezone: str = "Asia/Shanghai") -> None:
        self.path = path
        self.timezone = timezone
        self._entries: list[dict[str, Any]] = []
        self._seq = 0
        self._changed = threading.Condition()
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, at: float, openid: str, user: str, api: str, msgtype: str, content: str,
              **extra: Any) -> dict[str, Any]:
        """Record one accepted message at virtual time ``at``; returns the entry."""
        with self._changed:
            self._seq += 1
            entry = {
                "seq": self._seq,
                "time": iso_time(at, self.timezone, "milliseconds"),
                "openid": openid,
                "user": user,
                "api": api,
                "msgtype": msgtype,
                "content": content,
                **extra,
            }
            if self.path is not None:
                with self.path.open("a", encoding="utf-8") as out:
                    out.write(json.dumps(entry, ensure_ascii=False) + "\n")
            self._entries.append(entry)
            del self._entries[:-KEPT_IN_MEMORY]
            self._changed.notify_all()
            return entry

    @property
    def last_seq(self) -> int:
        """The ``seq`` of the newest entry (0 when empty)."""
        return self._seq

    def since(self, seq: int, openid: str | None = None) -> list[dict[str, Any]]:
        """Entries after ``seq``, for one recipient or for all."""
        with self._changed:
            return [e for e in self._entries
                    if e["seq"] > seq and (openid is None or e["openid"] == openid)]

    def wait(self, seq: int, timeout: float) -> bool:
        """Wait until an entry newer than ``seq`` exists or ``timeout`` passes; whether one does."""
        with self._changed:
            return self._changed.wait_for(lambda: self._seq > seq, timeout)
