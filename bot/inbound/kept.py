"""Kept answers: late answers on an account without the customer-service API, given once.

Such an account (every unverified one may not call ``message/custom/send``) can only answer with
a passive reply. :mod:`bot.inbound.delivery` keeps the first delivery open until WeChat gives up
on it, so that WeChat re-delivers; an answer ready after that has missed every delivery so far,
and is *kept*. Its life:

- **kept** (:func:`keep`): cached under ``Keys.seen`` as :data:`HELD` + the answer, for the
  retries, and kept in ``Keys.kept(openid)`` (delivery id -> question and answer), for the
  subscriber's next message; in one batch with the writes its handler deferred.
- **redeemed by a retry**: a retry that finds a :data:`HELD` answer takes it out of
  ``Keys.kept`` and gives it as its passive reply; later retries repeat it. ``redeem``
  (:data:`REDEEM_FUNCTION`) runs inside the delivery's claim script, or alone (:func:`redeem`)
  for a retry that waited for the first delivery.
- **or taken by the next message** (:func:`with_kept`, :data:`TAKE`): when the reply to the
  subscriber's next message is a text, it carries every kept answer, each introduced by its
  question, then the new answer, fitted to 2048 bytes with the rest kept for "more".

Whichever takes it first, in one script, gives it: once. A retry that finds it taken answers "no
reply" (:data:`~bot.inbound.encoding.LATE_MARK`). A kept answer lives :data:`KEPT_TTL`; unfollow
and 忘记我 delete it with the subscriber's other personal data (``Keys.personal``). No job, no
API call.
"""

from __future__ import annotations

import json
import logging
from concurrent.futures import Future
from typing import TYPE_CHECKING

import redis

from bot.inbound.encoding import LATE_MARK, as_text, decode, encode
from bot.inbound.handlers import fit
from bot.state import Keys, Lua
from bot.state.writes import Writes
from bot.wechat.message import Inbound, Reply, Text

if TYPE_CHECKING:
    from bot.services import Services

log = logging.getLogger(__name__)

HELD = "held:"
"""Prefixes a kept answer cached for retries: a retry that takes it from ``Keys.kept`` gives it."""
KEPT_TTL = 7 * 86400
"""How long an answer kept for the subscriber's next message waits for it."""
QUESTION_SHOWN = 30
"""Characters of a kept answer's question repeated to introduce it."""

REDEEM_FUNCTION = f"""
local function redeem(seen, kept, field)
  local cached = redis.call('GET', seen)
  if not cached or string.sub(cached, 1, {len(HELD)}) ~= '{HELD}' then return cached, 0 end
  local given = redis.call('HDEL', kept, field)
  if given == 1 then cached = string.sub(cached, {len(HELD) + 1}) else cached = '{LATE_MARK}' end
  redis.call('SET', seen, cached, 'KEEPTTL')
  return cached, given
end
"""
"""``redeem(seen, kept, field)``: the answer cached under ``seen`` and 1 when this call took it
from ``kept`` (a :data:`HELD` answer, still kept: it is the caller's to give, and later retries
get it too); :data:`~bot.inbound.encoding.LATE_MARK` and 0 once another message took it;
otherwise what is cached. A Lua function for other scripts to compose (the delivery's claim)."""

REDEEM = Lua(REDEEM_FUNCTION + """
local cached, given = redeem(KEYS[1], KEYS[2], ARGV[1])
return {cached or '', given}
""")
"""KEYS: seen, the sender's kept answers; ARGV: the delivery id. ``redeem`` alone, for a retry
that waited."""

TAKE = Lua("""
local kept = redis.call('HGETALL', KEYS[1])
redis.call('DEL', KEYS[1])
return kept
""")
"""KEYS: the sender's kept answers. Takes them all (field, value, ...): the taker gives them."""


def keep(
    r: redis.Redis, writes: Writes, message: Inbound, done: Future[Reply], dedup_ttl: int
) -> None:
    """An answer ready after the first delivery gave up: cached for the retries (:data:`HELD`)
    and kept for the next message, in one batch, with the writes its handler deferred."""
    reply = done.result()  # the delivery's compute() never raises
    seen_key = Keys.seen(message.openid, message.delivery_id)
    if reply is None:
        writes.close_fence()
        writes.set(seen_key, encode(None), ex=dedup_ttl)
    else:
        question = " ".join(message.content.split())
        if len(question) > QUESTION_SHOWN:
            question = question[:QUESTION_SHOWN] + "…"
        record = {"question": question, "time": message.create_time, "reply": encode(reply)}
        kept_key = Keys.kept(message.openid)
        writes.hset(kept_key, message.delivery_id, json.dumps(record, ensure_ascii=False))
        writes.expire(kept_key, KEPT_TTL)
        writes.close_fence()
        writes.set(seen_key, HELD + encode(reply), ex=dedup_ttl)
        log.info("late answer to %s kept for a re-delivery or the next message",
                 message.delivery_id)
    writes.delete(Keys.lock(message.openid, message.delivery_id))
    writes.send(r)


def redeem(r: redis.Redis, message: Inbound) -> str:
    """For a retry that found a :data:`HELD` answer cached: the answer to give (taken from
    ``Keys.kept`` here, or given already to an earlier retry), or the late mark once the next
    message took it; ``''`` when nothing is cached any more."""
    keys = [Keys.seen(message.openid, message.delivery_id), Keys.kept(message.openid)]
    cached, given = REDEEM(r, keys, [message.delivery_id])
    if given:
        log.info("kept answer to %s given to a re-delivery", message.delivery_id)
    return cached


def with_kept(message: Inbound, reply: Text, services: Services) -> Text:
    """``reply`` after the answers kept for the sender, if another request has not taken them:
    each introduced by its question, then fitted (:func:`bot.inbound.handlers.fit`)."""
    taken = TAKE(services.redis, [Keys.kept(message.openid)])
    records = sorted(
        (json.loads(value) for value in taken[1::2]), key=lambda record: record["time"]
    )
    parts = [_introduce(record, services) for record in records]
    for delivery in taken[::2]:
        log.info("kept answer to %s given with %s", delivery, message.delivery_id)
    if not parts:
        return reply
    return fit(message.openid, Text("\n\n".join([*parts, reply.content])), services)


def _introduce(record: dict, services: Services) -> str:
    """A kept answer, after 「你刚才问的「…」：」 or "About your earlier question “…”:"."""
    question = record["question"]
    text = as_text(decode(record["reply"]))
    zh = services.library.language_of(question or text) == "zh"
    if not question:
        intro = "你刚才的消息：" if zh else "About your earlier message:"
    elif zh:
        intro = f"你刚才问的「{question}」："
    else:
        intro = f"About your earlier question “{question}”:"
    return f"{intro}\n{text}"
