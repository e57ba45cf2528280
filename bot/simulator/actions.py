"""What a simulated subscriber can do, as typed in ``sim chat``, ``sim send`` or the chat page.

A plain line is a text message; slash commands send the other messages and events::

    /subscribe [SCENE]   follow (from a QR scene when given)     /unsubscribe
    /scan SCENE          scan a QR code while following          /click KEY   a menu button
    /view URL            a menu link                             /location LAT LON
    /voice TEXT          a voice message the platform transcribed  /image
    /block, /unblock     turn the account's messages off or on (only the platform hears it)

:func:`parse_action` turns a line into an :class:`Action`: the message fields for
``bot.simulator.wire.build_message`` and the activity the platform records
(``bot.simulator.platform``).
"""

from __future__ import annotations

import secrets
import textwrap
from dataclasses import dataclass, field
from typing import Any

USAGE = textwrap.dedent(__doc__.split("::", 1)[1].split("\n\n:func:")[0]).strip("\n")
"""The slash commands, for ``/help``."""


class ActionError(ValueError):
    """A chat line that is not a valid command; the text says how to write it."""


@dataclass(frozen=True)
class Action:
    """One thing a subscriber does."""

    kind: str
    """MsgType of the message, or ``""`` for an action only the platform hears."""
    fields: dict[str, Any] = field(default_factory=dict)
    activity: str = "message"
    """What the platform records (``message``, ``follow``, ``click``, ...)."""
    label: str = ""
    """How the chat shows it."""


def _ticket() -> str:
    return "gQ" + secrets.token_urlsafe(40)


def _media_id() -> str:
    return secrets.token_urlsafe(48)


def parse_action(line: str) -> Action:
    """The :class:`Action` for one chat line; :class:`ActionError` when it is malformed."""
    text = line.strip()
    if not text:
        raise ActionError("type a message, or /help")
    if not text.startswith("/"):
        return Action("text", {"Content": text}, "message", text)
    name, _, rest = text[1:].partition(" ")
    rest = rest.strip()
    args = rest.split()
    if name == "subscribe":
        fields = {"Event": "subscribe", "EventKey": f"qrscene_{rest}" if rest else ""}
        if rest:
            fields["Ticket"] = _ticket()
        return Action("event", fields, "follow", "[关注]" + (f" {rest}" if rest else ""))
    if name == "unsubscribe":
        return Action("event", {"Event": "unsubscribe", "EventKey": ""}, "unfollow", "[取消关注]")
    if name == "scan" and rest:
        return Action("event", {"Event": "SCAN", "EventKey": rest, "Ticket": _ticket()},
                      "scan", f"[扫码] {rest}")
    if name == "click" and len(args) == 1:
        return Action("event", {"Event": "CLICK", "EventKey": rest}, "click", f"[菜单] {rest}")
    if name == "view" and len(args) == 1:
        return Action("event", {"Event": "VIEW", "EventKey": rest}, "view", f"[链接] {rest}")
    if name == "location" and len(args) == 2:
        try:
            lat, lon = (float(a) for a in args)
        except ValueError:
            raise ActionError("usage: /location LAT LON, e.g. /location 23.13 113.26") from None
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise ActionError("latitude must be within ±90 and longitude within ±180")
        fields = {"Location_X": lat, "Location_Y": lon, "Scale": 15, "Label": ""}
        return Action("location", fields, "message", f"[位置] {lat}, {lon}")
    if name == "voice" and rest:
        fields = {"MediaId": _media_id(), "Format": "amr", "Recognition": rest}
        return Action("voice", fields, "message", f"[语音] {rest}")
    if name == "image" and not rest:
        media = _media_id()
        fields = {"PicUrl": f"http://mmbiz.qpic.cn/mmbiz_jpg/{media[:32]}/0", "MediaId": media}
        return Action("image", fields, "message", "[图片]")
    if name in ("block", "unblock") and not rest:
        return Action("", {}, name, "[拒收消息]" if name == "block" else "[接收消息]")
    raise ActionError(f"not a command: {text}\n{USAGE}")
