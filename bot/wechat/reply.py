"""Passive replies: a reply value (:mod:`bot.wechat.message`) rendered as the XML WeChat reads."""

from __future__ import annotations

from wechatpy.replies import ArticlesReply, TextReply

from bot import clock
from bot.wechat.message import News, Reply, Text

CDATA_END = "]]>"
CDATA_END_ESCAPED = "]]]]><![CDATA[>"
"""How ``]]>`` is written inside a CDATA section: end the section, start another."""


def escape_cdata(text: str) -> str:
    """Make ``text`` safe inside a CDATA section (wechatpy does not)."""
    return text.replace(CDATA_END, CDATA_END_ESCAPED)


def render_reply(reply: Reply, openid: str, account: str, create_time: int | None = None) -> str:
    """The passive reply XML for ``reply``, addressed back to ``openid``; ``success`` for None."""
    if reply is None:
        return "success"
    when = int(clock.now()) if create_time is None else create_time
    if isinstance(reply, Text):
        xml = TextReply(
            source=account, target=openid, time=when, content=escape_cdata(reply.content)
        ).render()
        return xml
    if isinstance(reply, News):
        news = ArticlesReply(source=account, target=openid, time=when)
        news.add_article(
            {
                "title": escape_cdata(reply.title),
                "description": escape_cdata(reply.description),
                "url": escape_cdata(reply.url),
                "image": escape_cdata(reply.image),
            }
        )
        return news.render()
    raise TypeError(f"not a reply: {reply!r}")
