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

An answer not ready within the budget takes one of two paths, chosen by what the account may
call (:func:`sends_later`, from ``config/account.yaml`` and :mod:`bot.wechat.privileges`):

- **customer-service API** (verified accounts): the first delivery answers "no reply" at the
  budget; the handler keeps running, stores its answer under ``Keys.late`` and an RQ job
  (:func:`bot.inbound.late.deliver_late`) sends it through the API, once (``Keys.late_sent``);
  retries get :data:`LATE_MARK` ("no reply"). If the process dies before the answer is stored,
  the job computes it itself.
- **kept for a retry, then for the next message** (unverified accounts: no API to send it
  with). A "success" in time would end WeChat's retries, so the first delivery stays open until
  WeChat has given up on it (:data:`OUTLAST_SECONDS`) and WeChat re-delivers. An answer ready by
  then is cached as usual. One ready later (:func:`_keep`) is cached as :data:`HELD` + the answer
  and kept in ``Keys.kept`` (delivery id -> question and answer). Whichever takes it first, in
  one script, gives it, once: a retry (the claim's ``redeem``: the retry's passive reply, and
  later retries repeat it), or the subscriber's next message whose reply is a text
  (:func:`with_kept`: the kept answers, introduced by their question, then the new answer,
  fitted to 2048 bytes with the rest kept for "more"). A retry that finds it taken answers "no
  reply". A kept answer lives :data:`KEPT_TTL`; unfollow and 忘记我 delete it
  (``Keys.personal``). No job, no API call.

A handler that raises is logged with its traceback; the subscriber gets an apology, WeChat a 200.

Two Redis round trips, one command each, answer a new delivery: the claim (one script: look
for a cached answer, take the lock, record the activity, see whether answers are kept for the
sender) and the store (one batch of :mod:`bot.state.writes`: the writes the handler deferred
through :meth:`bot.services.Services.later`, then the answer under ``Keys.seen`` and the lock
released, atomically: whoever sees the answer also sees the session it left). Giving kept
answers costs one more (:data:`TAKE`), only when there are some.
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

from bot.inbound.handlers import activity, fit, registry
from bot.state import Keys, Lua
from bot.state.writes import APPLY_LOOP, Command, Writes, report_failures, script_words
from bot.wechat import privileges
from bot.wechat.message import Inbound, News, Reply, Text

if TYPE_CHECKING:
    from bot.services import Services

log = logging.getLogger(__name__)

APOLOGY = Text("抱歉，刚才出了点问题，请稍后再试。\nSorry, something went wrong; please try again.")
LATE_MARK = "late"
"""Cached in place of an answer given another way: through the customer-service API, or (kept)
with the subscriber's next message. Reads as "no reply"."""
HELD = "held:"
"""Prefixes a kept answer cached for retries: a retry that takes it from ``Keys.kept`` gives it."""
POLL_SECONDS = 0.05
LATE_GRACE_SECONDS = 120
"""How long a late answer may take before the job stops waiting and computes it itself."""
OUTLAST_SECONDS = 5.5
"""How long the first delivery stays open on an account without the customer-service API:
past WeChat's 5 s, so that WeChat re-delivers (an answer it no longer waits for is harmless; a
"success" it still waits for would end its retries)."""
KEPT_TTL = 7 * 86400
"""How long an answer kept for the subscriber's next message waits for it."""
QUESTION_SHOWN = 30
"""Characters of a kept answer's question repeated to introduce it."""

LateSender = Callable[[Inbound], None]
"""Schedules the customer-service delivery of an answer that missed the deadline."""

_pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="answer")

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
get it too); :data:`LATE_MARK` and 0 once another message took it; otherwise what is cached."""

CLAIM = Lua(APPLY_LOOP + REDEEM_FUNCTION + """
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
    """The cached answer when the delivery was answered already (:func:`encode`)."""
    mine: bool = False
    """Claimed here: this request answers the delivery."""
    redeemed: bool = False
    """``answer`` is a kept answer this retry took: it gives it."""
    kept: bool = False
    """Answers are kept for the sender's next message (when claimed here)."""


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


def as_text(reply: Text | News) -> str:
    """A reply as plain text (a news reply: its title, description and link)."""
    if isinstance(reply, Text):
        return reply.content
    return "\n".join(part for part in (reply.title, reply.description, reply.url) if part)


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
    writes = Writes()  # the handler's deferred writes, then the answer
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
            enqueue_late(message)
        else:
            log.warning(
                "answer to %s not ready in %.1f s: keeping it for a re-delivery",
                message.delivery_id,
                wait,
            )
            future.add_done_callback(lambda done: _keep(r, writes, message, done, dedup_ttl))
        return None
    if found.kept and isinstance(reply, Text):
        reply = with_kept(message, reply, answering)
    writes.set(seen_key, encode(reply), ex=dedup_ttl)
    writes.delete(lock_key)
    writes.send(r)
    return reply


def claim(
    r: redis.Redis,
    openid: str,
    delivery: str,
    lock_ttl: int,
    commands: list[Command],
    guard: Guard | None = None,
) -> Claim:
    """Claim one delivery in one round trip, ``commands`` made in the same script once claimed.

    A kept answer to this delivery (:data:`HELD`) found still kept is taken here, for this
    retry to give. :class:`Replayed` when ``guard`` fails.
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
        if cached is not None and cached.startswith(HELD):
            keys = [seen_key, Keys.kept(message.openid)]
            cached, given = REDEEM(r, keys, [message.delivery_id])
            if given:
                log.info("kept answer to %s given to a re-delivery", message.delivery_id)
        if cached:
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


def _keep(
    r: redis.Redis, writes: Writes, message: Inbound, done: Future[Reply], dedup_ttl: int
) -> None:
    """An answer ready after the first delivery gave up: cached for the retries (:data:`HELD`)
    and kept for the next message, in one batch, with the writes its handler deferred."""
    reply = done.result()  # compute() never raises
    seen_key = Keys.seen(message.openid, message.delivery_id)
    if reply is None:
        writes.set(seen_key, encode(None), ex=dedup_ttl)
    else:
        question = " ".join(message.content.split())
        if len(question) > QUESTION_SHOWN:
            question = question[:QUESTION_SHOWN] + "…"
        record = {"question": question, "time": message.create_time, "reply": encode(reply)}
        kept_key = Keys.kept(message.openid)
        writes.hset(kept_key, message.delivery_id, json.dumps(record, ensure_ascii=False))
        writes.expire(kept_key, KEPT_TTL)
        writes.set(seen_key, HELD + encode(reply), ex=dedup_ttl)
        log.info("late answer to %s kept for a re-delivery or the next message",
                 message.delivery_id)
    writes.delete(Keys.lock(message.openid, message.delivery_id))
    writes.send(r)


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
