"""Answering each delivery exactly once, within WeChat's deadline.

WeChat waits 5 s for an answer, then re-delivers the same body (up to three times). This module
sits between the webhook and the handlers and guarantees, per delivery (sender + MsgId, or sender
+ CreateTime + Event + EventKey):

- it is processed once: the first request claims ``Keys.lock``; the answer is cached under
  ``Keys.seen`` for the dedup window, so a retry gets the same reply without processing again;
- the sender's activity (:func:`bot.inbound.handlers.activity`) is recorded once, by the request
  that wins the claim, inside the claim itself;
- a retry that arrives while the first is still being answered waits for that answer, within its
  own budget;
- an answer not ready within the budget is replaced by "no reply" (``success``); the handler keeps
  running, stores its answer under ``Keys.late`` and an RQ job
  (:func:`bot.inbound.late.deliver_late`) sends it through the customer-service API, once
  (``Keys.late_sent``). If the process dies before the answer is stored, the job computes it
  itself.

A handler that raises is logged with its traceback; the subscriber gets an apology, WeChat a 200.

Two Redis round trips, one command each, answer a new delivery: the claim (one script: look
for a cached answer, take the lock, record the activity) and the store (one batch of
:mod:`bot.state.writes`: the writes the handler deferred through
:meth:`bot.services.Services.later`,
then the answer under ``Keys.seen`` and the lock released, atomically: whoever sees the answer
also sees the session it left).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import redis

from bot.inbound.handlers import activity, registry
from bot.state import Keys, Lua
from bot.state.writes import APPLY_LOOP, Command, Writes, report_failures, script_words
from bot.wechat.message import Inbound, News, Reply, Text

if TYPE_CHECKING:
    from bot.services import Services

log = logging.getLogger(__name__)

APOLOGY = Text("抱歉，刚才出了点问题，请稍后再试。\nSorry, something went wrong; please try again.")
LATE_MARK = "late"
"""Cached in place of an answer that will come through the customer-service API."""
POLL_SECONDS = 0.05
LATE_GRACE_SECONDS = 120
"""How long a late answer may take before the job stops waiting and computes it itself."""

LateSender = Callable[[Inbound], None]
"""Schedules the customer-service delivery of an answer that missed the deadline."""

_pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="answer")

CLAIM = Lua(APPLY_LOOP + """
if ARGV[2] ~= '' then
  local body = redis.call('GET', KEYS[3])
  if body and body ~= ARGV[2] then return {3} end
  if not body then redis.call('SET', KEYS[3], ARGV[2], 'EX', ARGV[3]) end
end
local cached = redis.call('GET', KEYS[1])
if cached then return {1, cached} end
if not redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[1]) then return {0} end
return {2, apply(4, 4)}
""")
"""KEYS: seen, lock, the replay guard's key, then the on-claim commands' keys; ARGV: the lock's
TTL, the guard's value ('' for none) and TTL, then the commands' words
(:func:`bot.state.writes.script_words`). Returns {3} when the guard's key holds another value,
{1, answer} when the delivery was answered already, {0} when another request holds it,
{2, failures} once claimed and the commands made."""


@dataclass(frozen=True)
class Guard:
    """A value ``key`` must hold (set if absent) for the delivery to go on: the webhook's replay
    guard, the hash of the body first seen under a signed URL's (timestamp, nonce)."""

    key: str
    value: str
    ttl: int


class Replayed(Exception):
    """The guard's key holds another value: a signed URL re-used with a different body."""


def encode(reply: Reply) -> str:
    """A reply as JSON, for the cache."""
    if reply is None:
        return json.dumps({"kind": "none"})
    kind = "text" if isinstance(reply, Text) else "news"
    return json.dumps({"kind": kind, **asdict(reply)}, ensure_ascii=False)


def decode(data: str) -> Reply:
    """A reply back from :func:`encode` (the late mark reads as "no reply")."""
    if data == LATE_MARK:
        return None
    fields = json.loads(data)
    kind = fields.pop("kind")
    if kind == "text":
        return Text(**fields)
    if kind == "news":
        return News(**fields)
    return None


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
    r = services.redis
    seen_key = Keys.seen(message.openid, message.delivery_id)
    lock_key = Keys.lock(message.openid, message.delivery_id)
    cached, claimed = claim(
        r, seen_key, lock_key, int(budget) + LATE_GRACE_SECONDS, activity(message), guard
    )
    if cached is not None:
        log.info("re-delivery of %s answered from cache", message.delivery_id)
        return decode(cached)
    if not claimed:
        return _wait_for_first(r, seen_key, started + budget)

    writes = Writes()  # the handler's deferred writes, then the answer
    future: Future[Reply] = _pool.submit(compute, message, services.answering(writes))
    try:
        reply = future.result(timeout=max(0.0, budget - (time.monotonic() - started)))
    except FutureTimeout:
        log.warning(
            "answer to %s not ready in %.1f s: sending it later", message.delivery_id, budget
        )
        r.set(seen_key, LATE_MARK, ex=dedup_ttl)
        future.add_done_callback(lambda done: _store_late(r, writes, message, done, lock_key))
        enqueue_late(message)
        return None
    writes.set(seen_key, encode(reply), ex=dedup_ttl)
    writes.delete(lock_key)
    writes.send(r)
    return reply


def claim(
    r: redis.Redis,
    seen_key: str,
    lock_key: str,
    lock_ttl: int,
    commands: list[Command],
    guard: Guard | None = None,
) -> tuple[str | None, bool]:
    """Claim one delivery in one round trip: ``(cached answer, claimed here)``.

    ``(answer, False)`` when it was answered already, ``(None, False)`` while another request
    holds it, ``(None, True)`` once claimed here, ``commands`` made in the same script;
    :class:`Replayed` when ``guard`` fails.
    """
    guard_words = (guard.value, guard.ttl) if guard else ("", 0)
    keys, words = script_words(commands, lock_ttl, *guard_words)
    result = CLAIM(r, [seen_key, lock_key, guard.key if guard else lock_key, *keys], words)
    if result[0] == 3:
        raise Replayed(guard.key if guard else "")
    if result[0] == 1:
        return result[1], False
    if result[0] == 2:
        report_failures(result[1])
        return None, True
    return None, False


def _wait_for_first(r: redis.Redis, seen_key: str, deadline: float) -> Reply:
    """A retry while the first delivery is being answered: wait for that answer."""
    while time.monotonic() < deadline:
        cached = r.get(seen_key)
        if cached is not None:
            return decode(cached)
        time.sleep(POLL_SECONDS)
    return None  # the first request's late path delivers the answer


def _store_late(
    r: redis.Redis, writes: Writes, message: Inbound, done: Future[Reply], lock_key: str
) -> None:
    reply = done.result()  # compute() never raises
    late_key = Keys.late(message.openid, message.delivery_id)
    writes.set(late_key, encode(reply), ex=LATE_GRACE_SECONDS * 2)
    writes.delete(lock_key)
    writes.send(r)


def late_answer(r: redis.Redis, message: Inbound, services: Services) -> tuple[bool, Reply]:
    """For the late job: ``(True, answer)`` once there is one, ``(False, None)`` to wait.

    The answer is the one the web process stored or, when that process died before storing it
    (its lock expired), a fresh one computed here.
    """
    stored = r.get(Keys.late(message.openid, message.delivery_id))
    if stored is not None:
        return True, decode(stored)
    if r.exists(Keys.lock(message.openid, message.delivery_id)):
        return False, None  # still being computed by the web process
    log.warning(
        "late answer to %s was lost with its process: computing it again", message.delivery_id
    )
    return True, compute(message, services)
