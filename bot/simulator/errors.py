"""The fake platform's error answers: each ``errcode`` it gives, with WeChat's ``errmsg``.

Every rule of the platform (:mod:`~bot.simulator.platform` and the modules it composes) refuses
a call by raising :func:`refused`, the bot's own :class:`~bot.wechat.api.ApiError`, as the real
API's JSON answer would make the bot's client raise it.
"""

from __future__ import annotations

from bot.wechat.api import ApiError

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
"""``errcode`` -> ``errmsg``, as WeChat words them."""


def refused(code: int, detail: str = "") -> ApiError:
    """The platform's error answer ``code``, with its ``errmsg`` (and ``detail``, if any)."""
    return ApiError(code, ERRORS.get(code, "error") + (f": {detail}" if detail else ""))
