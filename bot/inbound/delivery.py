"""Answering each delivery exactly once, within WeChat's deadline; answers that miss it.

WeChat waits 5 s for an answer, then re-delivers the same body (up to three times). This module
sits between the webhook and the handlers and guarantees, per delivery (sender + MsgId, or sender
+ CreateTime + Event + EventKey):

- it is processed once: the first request claims ``Keys.lock``; the answer is cached under
  ``Keys.seen`` for the dedup window, so a retry gets the same reply without processing again;
- the sender's activity (:func:`bot.inbound.handlers.activity`) is recorded once, by the request
  that wins the claim, inside the claim itself;
- a retry that arrives while the first is still being answered waits for that answer, within its
  own budget, then answers "no reply" (``success``) if it is still not ready.
- the writes made on its behalf (the activity, the handler's deferred writes, a kept answer) are
  skipped if the sender unfollowed after it arrived (:func:`fence`): a delivery held back past an
  unfollow (by a failover, or a slow handler) neither brings them back nor leaves data behind.

An answer not ready within the budget takes one of two paths, chosen by what the account may
call (:func:`sends_later`, from ``config/account.yaml`` and :mod:`bot.wechat.privileges`):

- **customer-service API** (verified accounts): the first delivery answers "no reply" at the
  budget; the handler keeps running, stores its answer under ``Keys.late`` and an RQ job
  (:func:`bot.inbound.late.deliver_late`) sends it through the API, once (``Keys.late_sent``);
  retries get :data:`~bot.inbound.encoding.LATE_MARK` ("no reply"). If the process dies before
  the answer is stored, the job computes it itself.
- **kept for a retry, then for the next message** (unverified accounts: no API to send it
  with). A "success" in time would end WeChat's retries, so the first delivery stays open until
  WeChat has given up on it (:data:`OUTLAST_SECONDS`) and WeChat re-delivers. An answer ready by
  then is cached as usual. One ready later is a kept answer (:mod:`bot.inbound.kept`): given
  once, to a retry (the claim composes its ``redeem``) or with the reply to the subscriber's
  next message (:func:`bot.inbound.kept.with_kept`). No job, no API call.

A handler that raises is logged with its traceback; the subscriber gets an apology, WeChat a 200.

Two Redis round trips, one command each, answer a new delivery: the claim (one script: look
for a cached answer, take the lock, record the activity, see whether answers are kept for the
sender) and the store (one batch of :mod:`bot.state.writes`: the writes the handler deferred
through :meth:`bot.services.Services.later`, then the answer under ``Keys.seen`` and the lock
released, atomically: whoever sees the answer also sees the session it left). Giving kept
answers costs one more (:data:`bot.inbound.kept.TAKE`), only when there are some.

Replies are cached as :mod:`bot.inbound.encoding` writes them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import TYPE_CHECKING

import redis

from bot import clock
from bot.inbound import kept
from bot.inbound.encoding import LATE_MARK, decode, encode
from bot.inbound.handlers import activity, registry
from bot.state import Keys, Lua
from bot.state.writes import APPLY_LOOP, Command, Writes, report_failures, script_words
from bot.wechat import privileges
from bot.wechat.message import Inbound, Reply, Text

if TYPE_CHECKING:
    from bot.services import Services

log = logging.getLogger(__name__)

APOLOGY = Text("抱歉，刚才出了点问题，请稍后再试。\nSorry, something went wrong; please try again.")
POLL_SECONDS = 0.05
LATE_GRACE_SECONDS = 120
"""How long a late answer may take before the job stops waiting and computes it itself."""
OUTLAST_SECONDS = 5.5
"""How long the first delivery stays open on an account without the customer-service API:
past WeChat's 5 s, so that WeChat re-delivers (an answer it no longer waits for is harmless; a
"success" it still waits for would end its retries)."""

LateSender = Callable[[Inbound, float], None]
"""Schedules the customer-service delivery of an answer that missed the deadline (the message,
and when it arrived)."""

_pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="answer")

CLAIM = Lua(APPLY_LOOP + kept.REDEEM_FUNCTION + """
if ARGV[2] ~= '' then
  local body = redis.call('GET', KEYS[3])
  if body and body ~= ARGV[2] then return {3} end
  if not body then redis.call('SET', KEYS[3], ARGV[2], 'EX', ARGV[3]) end
end
local cached, given = redeem(KEYS[1], KEYS[4], ARGV[4])
if cached then return {1, cached, given} end
if not redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[1]) then return {0} end
return {2, apply(5, 5), redis.call('EXISTS', KEYS[4])}
""")
"""KEYS: seen, lock, the replay guard's key, the sender's kept answers, then the on-claim
commands' keys; ARGV: the lock's TTL, the guard's value ('' for none) and TTL, the delivery id,
then the commands' words (:func:`bot.state.writes.script_words`). Returns {3} when the guard's
key holds another value, {1, answer, taken} when the delivery was answered already, {0} when
another request holds it, {2, failures, kept} once claimed and the commands made."""


@dataclass(frozen=True)
class Guard:
    """A value ``key`` must hold (set if absent) for the delivery to go on: the webhook's replay
    guard, the hash of the body first seen under a signed URL's (timestamp, nonce)."""

    key: str
    value: str
    ttl: int


@dataclass(frozen=True)
class Claim:
    """What the claim of a delivery found."""

    answer: str | None = None
    """The cached answer when the delivery was answered already
    (:func:`bot.inbound.encoding.encode`)."""
    mine: bool = False
    """Claimed here: this request answers the delivery."""
    redeemed: bool = False
    """``answer`` is a kept answer this retry took: it gives it."""
    kept: bool = False
    """Answers are kept for the sender's next message (when claimed here)."""


class Replayed(Exception):
    """The guard's key holds another value: a signed URL re-used with a different body."""


def sends_later(services: Services) -> bool:
    """Whether this account may send late answers through the customer-service API."""
    account = services.config.account
    return privileges.allowed("custom", account.type, account.verified)


def compute(message: Inbound, services: Services) -> Reply:
    """Run the handler, turning a crash into an apology (and a log line with the traceback)."""
    try:
        return registry.dispatch(message, services)
    except Exception:  # any handler bug must still give the subscriber an answer
        log.exception("handler failed for %s %s", message.kind, message.event or "")
        return APOLOGY


def answer(
    message: Inbound,
    services: Services,
    budget: float,
    dedup_ttl: int,
    enqueue_late: LateSender,
    guard: Guard | None = None,
) -> Reply:
    """The reply for ``message``, within ``budget`` seconds, processing it at most once.

    Raises :class:`Replayed` when ``guard`` fails (before anything else is read or written).
    """
    started = time.monotonic()
    arrived = clock.now()
    r = services.redis
    seen_key = Keys.seen(message.openid, message.delivery_id)
    lock_key = Keys.lock(message.openid, message.delivery_id)
    found = claim(
        r,
        message.openid,
        message.delivery_id,
        int(budget) + LATE_GRACE_SECONDS,
        activity(message),
        guard,
    )
    if found.answer is not None:
        if found.redeemed:
            log.info("kept answer to %s given to a re-delivery", message.delivery_id)
        else:
            log.info("re-delivery of %s answered from cache", message.delivery_id)
        return decode(found.answer)
    if not found.mine:
        return _wait_for_first(r, message, started + budget)

    api = sends_later(services)
    wait = budget if api else max(budget, OUTLAST_SECONDS)
    writes = Writes(fence(message, arrived))  # the handler's deferred writes, then the answer
    answering = services.answering(writes)
    future: Future[Reply] = _pool.submit(compute, message, answering)
    try:
        reply = future.result(timeout=max(0.0, wait - (time.monotonic() - started)))
    except FutureTimeout:
        if api:
            log.warning(
                "answer to %s not ready in %.1f s: sending it later", message.delivery_id, budget
            )
            r.set(seen_key, LATE_MARK, ex=dedup_ttl)
            future.add_done_callback(lambda done: _store_late(r, writes, message, done, lock_key))
            enqueue_late(message, arrived)
        else:
            log.warning(
                "answer to %s not ready in %.1f s: keeping it for a re-delivery",
                message.delivery_id,
                wait,
            )
            future.add_done_callback(lambda done: kept.keep(r, writes, message, done, dedup_ttl))
        return None
    if found.kept and isinstance(reply, Text):
        reply = kept.with_kept(message, reply, answering)
    writes.close_fence()
    writes.set(seen_key, encode(reply), ex=dedup_ttl)
    writes.delete(lock_key)
    writes.send(r)
    return reply


def fence(message: Inbound, arrived: float) -> tuple[str, float] | None:
    """What the writes made on behalf of ``message`` give way to: an unfollow after it
    ``arrived`` (:data:`bot.subscribers.GONE_SECONDS`); nothing for the unfollow itself."""
    return None if message.event == "unsubscribe" else (Keys.gone(message.openid), arrived)


def claim(
    r: redis.Redis,
    openid: str,
    delivery: str,
    lock_ttl: int,
    commands: list[Command],
    guard: Guard | None = None,
) -> Claim:
    """Claim one delivery in one round trip, ``commands`` made in the same script once claimed.

    A kept answer to this delivery (:data:`bot.inbound.kept.HELD`) found still kept is taken
    here, for this retry to give. :class:`Replayed` when ``guard`` fails.
    """
    seen_key, lock_key = Keys.seen(openid, delivery), Keys.lock(openid, delivery)
    guard_words = (guard.value, guard.ttl) if guard else ("", 0)
    keys, words = script_words(commands, lock_ttl, *guard_words, delivery)
    guard_key = guard.key if guard else lock_key
    result = CLAIM(r, [seen_key, lock_key, guard_key, Keys.kept(openid), *keys], words)
    if result[0] == 3:
        raise Replayed(guard.key if guard else "")
    if result[0] == 1:
        return Claim(answer=result[1], redeemed=bool(result[2]))
    if result[0] == 2:
        report_failures(result[1])
        return Claim(mine=True, kept=bool(result[2]))
    return Claim()


def _wait_for_first(r: redis.Redis, message: Inbound, deadline: float) -> Reply:
    """A retry while the first delivery is being answered: wait for that answer."""
    seen_key = Keys.seen(message.openid, message.delivery_id)
    while time.monotonic() < deadline:
        cached = r.get(seen_key)
        if cached is not None and cached.startswith(kept.HELD):
            cached = kept.redeem(r, message)
        if cached:
            return decode(cached)
        time.sleep(POLL_SECONDS)
    return None  # the first request's late path delivers the answer


def _store_late(
    r: redis.Redis, writes: Writes, message: Inbound, done: Future[Reply], lock_key: str
) -> None:
    reply = done.result()  # compute() never raises
    late_key = Keys.late(message.openid, message.delivery_id)
    writes.close_fence()
    writes.set(late_key, encode(reply), ex=LATE_GRACE_SECONDS * 2)
    writes.delete(lock_key)
    writes.send(r)


def late_answer(
    r: redis.Redis, message: Inbound, services: Services, arrived: float | None = None
) -> tuple[bool, Reply]:
    """For the late job: ``(True, answer)`` once there is one, ``(False, None)`` to wait.

    The answer is the one the web process stored or, when that process died before storing it
    (its lock expired), a fresh one computed here (:func:`recompute`).
    """
    stored = r.get(Keys.late(message.openid, message.delivery_id))
    if stored is not None:
        return True, decode(stored)
    if r.exists(Keys.lock(message.openid, message.delivery_id)):
        return False, None  # still being computed by the web process
    log.warning(
        "late answer to %s was lost with its process: computing it again", message.delivery_id
    )
    return True, recompute(message, services, arrived)


def recompute(message: Inbound, services: Services, arrived: float | None) -> Reply:
    """Answer ``message`` outside its delivery (the late job), its writes behind the same
    :func:`fence` as the delivery's when the time it ``arrived`` is known."""
    writes = Writes(None if arrived is None else fence(message, arrived))
    reply = compute(message, services.answering(writes))
    writes.close_fence()
    writes.send(services.redis)
    return reply
