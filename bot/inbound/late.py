"""Answers that missed the webhook's deadline: sent through the customer-service API, once.

Two paths, chosen per account by :func:`bot.inbound.delivery.sends_later` (what
``config/account.yaml``'s ``type`` and ``verified`` may call, :mod:`bot.wechat.privileges`):

- Verified accounts (this module): the webhook calls the sender (:func:`sender`) when a handler
  is not done within its budget; the RQ job :func:`deliver_late` waits for that answer (or
  computes it, if the web process died) and sends it. At most once: the send is marked in
  ``Keys.late_sent`` before the API call; a crash between the mark and the call loses that one
  answer rather than risking a duplicate. What a failed call does next is the API client's one
  retry policy (:attr:`bot.wechat.api.ApiError.fate`).
- Unverified accounts (every personal one) may not call ``message/custom/send`` (48001): no job,
  no API call. The answer is kept instead (:mod:`bot.inbound.kept`), for a re-delivery of the
  same message, else for the reply to the subscriber's next message (``Keys.kept``), once.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict

import redis
from rq import Retry

from bot import services, state, worker
from bot.inbound import delivery
from bot.inbound.encoding import as_text
from bot.push import throttle
from bot.state import Keys
from bot.wechat.api import RETRY, UNKNOWN, ApiError
from bot.wechat.message import Inbound

log = logging.getLogger(__name__)

LATE_RETRY = Retry(max=3, interval=[10, 30, 60])
"""Back-off for a late reply whose API call failed in a way worth retrying."""

SENT_TTL = 2 * 86400
"""How long the mark of a sent late answer is kept (longer than any re-delivery)."""


def sender(client: redis.Redis) -> delivery.LateSender:
    """What the webhook calls when an answer misses the deadline: enqueue :func:`deliver_late`."""
    late_queue = worker.queue(client)

    def enqueue(message: Inbound, arrived: float) -> None:
        late_queue.enqueue(
            "bot.inbound.late.deliver_late",
            message_fields(message),
            arrived=arrived,
            retry=LATE_RETRY,
            job_id=f"late-{message.openid}-{message.delivery_id}".replace(":", "-"),
        )

    return enqueue


def message_fields(message: Inbound) -> dict:
    """An inbound message as JSON-friendly job arguments."""
    return {**asdict(message), "fields": dict(message.fields)}


def deliver_late(
    fields: dict,
    wait_seconds: float = delivery.LATE_GRACE_SECONDS,
    arrived: float | None = None,
) -> str:
    """Send the answer to the message ``fields`` describe (which ``arrived`` then), once;
    returns what happened."""
    bot = services.current()
    message = Inbound(**fields)
    r = bot.redis
    sent_key = Keys.late_sent(message.openid, message.delivery_id)
    if r.exists(sent_key):
        return "already sent"
    deadline = time.monotonic() + wait_seconds
    ready, reply = delivery.late_answer(r, message, bot, arrived)
    while not ready:
        if time.monotonic() > deadline:
            ready, reply = True, delivery.recompute(message, bot, arrived)
            break
        time.sleep(0.2)
        ready, reply = delivery.late_answer(r, message, bot, arrived)
    if reply is None:
        return "nothing to send"
    since = state.epoch(r)
    if not r.set(sent_key, "sending", nx=True, ex=SENT_TTL):
        return "already sent"
    try:
        state.durable(r, since)  # a failover must not forget the mark and let a retry send it again
    except state.NotDurable:
        r.delete(sent_key)
        raise
    text = as_text(reply)
    try:
        bot.api.send_text(message.openid, text)
    except ApiError as exc:
        if exc.fate == UNKNOWN:
            r.set(sent_key, "unknown", ex=SENT_TTL)  # it may have gone out: never send it again
            log.warning("late answer to %s: outcome unknown (%s)", message.delivery_id, exc)
            return "unknown"
        if exc.fate == RETRY:
            r.delete(sent_key)  # nothing went out: a retry may send it
            raise
        log.warning("late answer to %s dropped: %s", message.delivery_id, exc)
        return f"dropped: {exc.code}"
    r.set(sent_key, "sent", ex=SENT_TTL)
    throttle.record_cs_send(r, message.openid)  # it used a slot of the 48 h quota
    return "sent"
