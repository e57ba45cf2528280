"""What the fake platform reads from a request body, or the error it refuses the body with.

Shared by the platform's rules (:mod:`~bot.simulator.platform`, :mod:`~bot.simulator.mass`,
:mod:`~bot.simulator.tags`): the message a send carries (:func:`message`, 40008 or 47001), the
buttons of ``menu/create`` (:func:`menu_buttons`, the platform's limits: 400xx) and JSON integers
(:func:`is_int`).
"""

from __future__ import annotations

import json
from typing import Any

from bot.config import (
    MENU_KEY_BYTES,
    MENU_SUB_BUTTONS,
    MENU_SUB_NAME_BYTES,
    MENU_TOP_BUTTONS,
    MENU_TOP_NAME_BYTES,
    MENU_URL_BYTES,
)
from bot.simulator.errors import refused

MESSAGE_TYPES = frozenset({"text", "image", "voice", "video", "music", "news", "mpnews",
                           "mpnewsarticle", "msgmenu", "wxcard", "miniprogrampage", "mpvideo"})


def is_int(value: Any) -> bool:
    """Whether a JSON value is an integer (``true`` is not)."""
    return isinstance(value, int) and not isinstance(value, bool)


def message(body: dict[str, Any]) -> tuple[str, str]:
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


def menu_buttons(body: dict[str, Any]) -> list[Any]:
    """The ``button`` list of a ``menu/create`` body, once within the platform's limits."""
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
    return buttons


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
