"""Digest runs: slots from the schedule, planning in chunks, sending, deferred sends, reconciling.

A *run* is one digest at one slot of its cron schedule, named ``<digest>@<slot epoch>``. Its
life, each step idempotent so a retried or duplicated job changes nothing:

1. :func:`start_run` marks it scheduled (``HSETNX``: the first scheduler wins, a second one or a
   restart at the same slot does nothing);
2. :func:`plan` splits the subscribers (``ZSCAN`` of ``Keys.push_members``) into chunks and hands
   each to ``enqueue_chunk`` (an RQ job, or a direct call in ``push run``);
3. :func:`process_chunk` picks each subscriber's articles, asks the throttle (which reserves every
   send in the run's ledger before the API call), calls the API, and settles each outcome; the
   ``msg_id`` of each mass call is kept to match its receipt (:mod:`bot.push.receipts`);
4. :func:`sweep` re-decides the sends quiet hours deferred, once they are due;
5. :func:`reconcile` turns reservations left by a crash into ``unknown`` (never resent) and decides
   for every subscriber of the slot whose chunk was lost.

Channels (``config/push.yaml``, open to the account kinds :mod:`bot.wechat.privileges` says):
``custom`` and ``mass`` go through the chunks above; ``tag`` is one broadcast made by the planning
job itself (:mod:`bot.push.tags`); ``visit`` has no run at the slot at all: its editions are
decided one subscriber at a time, on the reply to their message (:mod:`bot.push.visits`).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import redis
from croniter import croniter

from bot import clock, state
from bot.config import Digest
from bot.push import inflight, receipts
from bot.push.selection import BOTH, FIRST_DIGEST_LOOKBACK, Catalog, Item, render
from bot.push.throttle import LEASE_SECONDS, Candidate, Decision, Throttle, log_entries
from bot.state import RUN_TTL, Keys, drop_if_same
from bot.wechat.api import RETRY, UNKNOWN, ApiError, ApiUnreachable

if TYPE_CHECKING:
    from bot.services import Services

log = logging.getLogger(__name__)

CHUNK_SIZE = 500
"""Subscribers per chunk job (hundreds: never one job per subscriber)."""

MASS_CHUNK_SIZE = 10000
"""Subscribers per chunk of a mass digest: one ``mass/send`` call takes at most 10000 openids
(verified service accounts only: :mod:`bot.wechat.privileges`)."""

MASS_DAY_TTL = 26 * 3600
"""How long the claim on a subscription account's mass send of a local day is kept: longer than
any local day (25 h when clocks go back), and the next day has its own key."""

DAY_TAKEN = "day-taken"
"""Ledger detail of a ``skipped-quota`` send: the day's one mass send was claimed by another."""

SETTLE_SECONDS = 0.5
"""Outcomes are recorded at least this often: a crash leaves only the last half second's sends
as ``unknown`` (at the API's pace, a handful), and a fast API does not pay a round trip each."""

PERSONAL = ("custom", "visit")
"""Channels that pick articles per subscriber (the broadcasts send one pick to everyone)."""

CATCH_UP = 3600
"""A slot missed by longer than this (the scheduler was down) is not sent late."""


class RetryLater(Exception):
    """Some sends of a chunk hit a quota or an outage; the job is retried with back-off."""


def catalog(services: Services) -> Catalog:
    """The current articles (reloaded only when files changed)."""
    config = services.config
    return Catalog.load(services.settings.content_dir, config.folder, config.account.timezone)


# --- runs and slots -----------------------------------------------------------------------------


def run_id(digest: str, slot: float) -> str:
    """The name of one digest at one slot."""
    return f"{digest}@{int(slot)}"


def parse_run(run: str) -> tuple[str, float]:
    """``(digest, slot)`` of a run id."""
    digest, _, slot = run.rpartition("@")
    if not digest or not slot.isdigit():
        raise ValueError(f"not a run id: {run!r} (expected <digest>@<epoch seconds>)")
    return digest, float(slot)


def last_slot(digest: Digest, timezone: str, now: float) -> float:
    """The latest slot of ``digest``'s schedule at or before ``now`` (in the account's zone)."""
    local = dt.datetime.fromtimestamp(now, ZoneInfo(timezone))
    itr = croniter(digest.schedule, local + dt.timedelta(seconds=1))
    return itr.get_prev(dt.datetime).timestamp()


def start_run(r: redis.Redis, run: str, now: float) -> bool:
    """Mark ``run`` scheduled; False when it already was (another scheduler, a restart)."""
    key = Keys.push_plan(run)
    first = bool(r.hsetnx(key, "scheduled", repr(now)))
    if first:
        pipe = r.pipeline()
        pipe.expire(key, RUN_TTL)
        pipe.zadd(Keys.push_runs(), {run: parse_run(run)[1]})
        pipe.execute()
    return first


def plan(
    services: Services,
    run: str,
    enqueue_chunk: Callable[[int, list[str]], None],
    final_attempt: bool = True,
) -> int:
    """Hand every subscriber of ``run`` to ``enqueue_chunk`` in chunks; returns the chunk count.

    Planning twice (a retried job) enqueues the chunks again, which the ledger makes harmless.
    A tag digest has no chunks: its one broadcast is made here (:func:`bot.push.tags.broadcast`,
    which may raise :class:`RetryLater` unless this is the ``final_attempt``).
    """
    r = services.redis
    name, slot = parse_run(run)
    digest = services.config.push.digest(name)
    key = Keys.push_plan(run)
    if r.hget(key, "state") == "planned":
        return int(r.hget(key, "chunks") or 0)
    r.hsetnx(key, "scheduled", repr(clock.now()))
    r.zadd(Keys.push_runs(), {run: slot})
    if digest.channel == "tag":  # one broadcast: decided, tagged and sent here, in one job
        from bot.push import tags

        tags.broadcast(services, run, final_attempt)
        mark_planned(r, run, 0)
        return 0
    size = chunk_size(digest)
    count = 0
    for count, openids in enumerate(members(r, size, until=slot), 1):
        enqueue_chunk(count - 1, openids)
    mark_planned(r, run, count)
    return count


def chunk_size(digest: Digest) -> int:
    """Subscribers per chunk of ``digest``: one mass call's worth, or a few hundred sends."""
    return MASS_CHUNK_SIZE if digest.channel == "mass" else CHUNK_SIZE


def mark_planned(r: redis.Redis, run: str, chunks: int) -> None:
    """Record that every chunk of ``run`` was handed out."""
    pipe = r.pipeline()
    pipe.hset(Keys.push_plan(run), mapping={"state": "planned", "chunks": chunks})
    pipe.expire(Keys.push_plan(run), RUN_TTL)
    pipe.execute()


def members(r: redis.Redis, size: int, until: float | None = None) -> Iterator[list[str]]:
    """Subscribed openids in lists of ``size`` (``ZSCAN``: nobody present throughout is missed).

    ``until`` leaves out who followed after that time.
    """
    batch: list[str] = []
    seen: set[str] = set()
    for openid, followed in r.zscan_iter(Keys.push_members(), count=size):
        if (until is not None and followed > until) or openid in seen:
            continue
        seen.add(openid)
        batch.append(openid)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


# --- one chunk ----------------------------------------------------------------------------------


@lru_cache(maxsize=256)
def quiet_intervals(timezone: str, quiet: str, hour: int) -> tuple[tuple[float, float], ...]:
    """Quiet intervals (epoch seconds) around the hour ``hour`` (epoch hours) in ``timezone``."""
    start, _, end = quiet.partition("-")
    if quiet == "off" or not start.isdigit() or not end.isdigit():
        return ()
    zone = ZoneInfo(timezone)
    today = dt.datetime.fromtimestamp(hour * 3600, zone).date()
    out = []
    for shift in (-1, 0, 1):
        day = today + dt.timedelta(days=shift)
        begin = dt.datetime.combine(day, dt.time(int(start)), zone)
        finish_day = day if int(end) > int(start) else day + dt.timedelta(days=1)
        finish = dt.datetime.combine(finish_day, dt.time(int(end)), zone)
        out.append((begin.timestamp(), finish.timestamp()))
    return tuple(out)


def process_chunk(
    services: Services, run: str, openids: list[str], final_attempt: bool = True
) -> Counter[str]:
    """Decide and send for ``openids``; returns the decisions made by this call.

    Raises :class:`RetryLater` when quota or outage errors left sends to retry (unless this is
    the ``final_attempt``, which records them as ``failed-api``).
    """
    name, slot = parse_run(run)
    digest = services.config.push.digest(name)
    if digest.channel == "visit":
        raise ValueError(f"{run}: a visit digest is decided on replies (bot.push.visits), "
                         "not in chunks")
    now = clock.now()
    throttle = throttle_for(services, digest, run, now)
    candidates, picks, langs, mass_items = candidates_of(services, digest, slot, openids, now)
    decisions = throttle.decide(candidates)
    counts: Counter[str] = Counter(
        d.reason if d.fresh else "already-decided" for d in decisions if d.reason != "reserved"
    )
    reserved = [d for d in decisions if d.reason == "reserved"]
    if digest.channel == "custom":
        outcomes = _send_custom(services, throttle, reserved, picks, langs, final_attempt)
    elif digest.channel == "tag":  # left out of the run's one broadcast (reconcile): too late
        outcomes = Counter(throttle.settle([(d, "skipped-quota", "broadcast-done")
                                            for d in reserved]))
    else:
        outcomes = _send_mass(services, throttle, reserved, mass_items, run, final_attempt)
    counts.update(outcomes)
    if counts.get("retry") and not final_attempt:
        raise RetryLater(f"{run}: {counts['retry']} sends to retry after a quota or outage error")
    return counts


def throttle_for(
    services: Services, digest: Digest, run: str, now: float = 0.0, day: str = ""
) -> Throttle:
    """The throttle of ``run``, counting its decisions in the report of ``day`` (default: the UTC
    day of ``now``)."""
    config = services.config
    return Throttle(
        services.redis, run, digest.name, digest.channel, config.push.limits,
        day=day or dt.datetime.fromtimestamp(now, dt.UTC).date().isoformat(),
        account_type=config.account.type,
    )


def candidates_of(
    services: Services, digest: Digest, slot: float, openids: list[str], now: float
) -> tuple[list[Candidate], dict[str, list[Item]], dict[str, str], list[Item]]:
    """Each subscriber's pick of articles, language and quiet intervals (read in one pipeline).

    Plain commands in one round trip (:func:`bot.state.bulk`), not a script: reading costs the
    Redis server a third as much this way, and Redis is what a large run waits for.
    """
    r, config = services.redis, services.config
    articles = catalog(services)
    replies = state.bulk(r, [
        *(
            command
            for openid in openids
            for command in (
                ("HMGET", Keys.user(openid), "tz", "quiet", "lang", "since"),
                ("ZRANGE", Keys.push_interests(openid), 0, -1, "WITHSCORES"),
            )
        ),
        ("HMGET", Keys.push_cursors(), *openids),
    ])
    cursors = replies.pop()
    limits = config.push.limits
    default_quiet = f"{limits.quiet_start}-{limits.quiet_end}"
    mass_items = articles.pick({}, slot - 7 * 86400, now, digest.items)
    candidates: list[Candidate] = []
    picks: dict[str, list[Item]] = {}
    langs: dict[str, str] = {}
    chosen: dict[tuple[object, ...], list[Item]] = {}  # many subscribers share interests
    for openid, (tz, quiet, lang, since), terms, cursor in zip(
        openids, replies[::2], replies[1::2], cursors, strict=True
    ):
        interests = _weights(terms)
        last = log_entries(cursor).get(digest.name)
        start = last if last is not None else float(since or now) - FIRST_DIGEST_LOOKBACK
        if digest.channel in PERSONAL:
            memo = (start, *interests.items())
            picked = chosen.get(memo)
            if picked is None:
                picked = chosen[memo] = articles.pick(interests, start, now, digest.items)
        else:
            picked = [
                item for item in mass_items
                if item.published > start and (not interests or item.terms & interests.keys())
            ]
            picked = mass_items if picked else []
        picks[openid], langs[openid] = picked, lang or "zh"
        zone = tz or config.account.timezone
        intervals = quiet_intervals(zone, quiet or default_quiet, int(now // 3600))
        candidates.append(Candidate(openid, bool(picked), intervals))
    return candidates, picks, langs, mass_items


def _weights(reply: list[Any]) -> dict[str, float]:
    """Interest weights from ``ZRANGE ... WITHSCORES``: flat in RESP2, pairs in RESP3."""
    if reply and isinstance(reply[0], list):
        return {term: float(weight) for term, weight in reply}
    return dict(zip(reply[::2], map(float, reply[1::2]), strict=True))


def preview(services: Services, run: str, openids: list[str]) -> list[tuple[str, str, list[Item]]]:
    """What :func:`process_chunk` would decide now, without reserving or sending anything."""
    name, slot = parse_run(run)
    digest = services.config.push.digest(name)
    throttle = throttle_for(services, digest, run, day="preview")
    candidates, picks, _, _ = candidates_of(services, digest, slot, openids, clock.now())
    decisions = throttle.decide(candidates, dry_run=True)
    return [(d.openid, d.reason, picks[d.openid]) for d in decisions]


def failure(exc: ApiError, final_attempt: bool) -> tuple[str, str, bool]:
    """``(outcome, detail, stop calling)`` for an API error, by its fate (the one retry policy)."""
    if isinstance(exc, ApiUnreachable):
        detail = "timeout" if exc.fate == UNKNOWN else "unreachable"
    else:
        detail = str(exc.code)
    if exc.fate == UNKNOWN:
        return "unknown", detail, False
    if exc.fate == RETRY:
        return ("failed-api" if final_attempt else "retry"), detail, True
    return "failed-api", detail, False


def _send_custom(
    services: Services,
    throttle: Throttle,
    reserved: list[Decision],
    picks: dict[str, list[Item]],
    langs: dict[str, str],
    final_attempt: bool,
) -> Counter[str]:
    """Call the API for each reserved send, a claimed group at a time (:mod:`bot.push.inflight`),
    and settle the outcomes every :data:`SETTLE_SECONDS`."""
    r = services.redis
    counts: Counter[str] = Counter()
    batch: list[tuple[Decision, str, str]] = []
    halted: tuple[str, str] | None = None
    settled = time.monotonic()
    texts: dict[tuple[tuple[str, ...], str], str] = {}  # the same pick, the same text
    ended: list[str] = []  # the group whose sends are over, released with the next claim
    per_send, at = 0.0, 0
    while at < len(reserved):
        group = reserved[at: at + inflight.group_size(per_send)]
        at += len(group)
        if halted:
            batch.extend((decision, *halted) for decision in group)
            continue
        started, since = time.monotonic(), state.epoch(r)
        verdicts = inflight.claim(r, [d.openid for d in group], throttle.run, ended)
        ended = [d.openid for d, verdict in zip(group, verdicts, strict=True) if verdict == "go"]
        if ended:
            try:
                state.durable(r, since)  # a claim a failover could forget does not send
            except state.NotDurable as exc:
                log.warning("digests of %s held back: %s", throttle.run, exc)
                halted = ("failed-api" if final_attempt else "retry"), "not-replicated"
        for decision, verdict in zip(group, verdicts, strict=True):
            if halted:
                batch.append((decision, *halted))
            elif verdict != "go":  # said stop, or unfollowed, since the decision
                batch.append((decision, verdict, "stopped-in-flight"))
            else:
                halted = _call(services, decision, picks, langs, texts, final_attempt, batch)
        per_send = (time.monotonic() - started) / len(group)
        if time.monotonic() - settled >= SETTLE_SECONDS:
            counts.update(throttle.settle(batch))
            batch, settled = [], time.monotonic()
    if batch:
        counts.update(throttle.settle(batch))
    inflight.release(r, ended)
    return counts


def _call(
    services: Services,
    decision: Decision,
    picks: dict[str, list[Item]],
    langs: dict[str, str],
    texts: dict[tuple[tuple[str, ...], str], str],
    final_attempt: bool,
    batch: list[tuple[Decision, str, str]],
) -> tuple[str, str] | None:
    """Send one digest, noting its outcome in ``batch``; the outcome that stops the chunk's other
    calls (quota, outage), if this was one."""
    picked, lang = picks[decision.openid], langs[decision.openid]
    key = (tuple(item.key for item in picked), lang)
    text = texts.get(key)
    if text is None:
        text = texts[key] = render(picked, lang)
    try:
        services.api.send_text(decision.openid, text)
    except ApiError as exc:
        outcome, detail, stop = failure(exc, final_attempt)
        log.info("digest to %s: %s (%s)", decision.openid, outcome, exc)
        batch.append((decision, outcome, detail))
        return (outcome, detail) if stop else None
    batch.append((decision, "sent", ""))
    return None


def _send_mass(
    services: Services,
    throttle: Throttle,
    reserved: list[Decision],
    items: list[Item],
    run: str,
    final_attempt: bool,
) -> Counter[str]:
    if not reserved:
        return Counter()
    r = services.redis
    openids = [d.openid for d in reserved]
    clientmsgid = f"{run}:{openids[0]}"  # a retry of this chunk re-uses it: never sent twice
    if len(openids) < 2:  # mass/send takes 2 to 10000 openids
        return Counter(throttle.settle([(reserved[0], "failed-api", "one-recipient")]))
    msg_id = 0
    try:
        msg_id = services.api.mass_send(openids, render(items, BOTH), clientmsgid)
        outcome, detail = "sent", ""
    except ApiError as exc:
        outcome, detail, _ = failure(exc, final_attempt)
    counts = Counter(throttle.settle([(d, outcome, detail) for d in reserved]))
    if msg_id:
        receipts.record_send(r, str(msg_id), run, len(openids))
    return counts


def nothing_sent(exc: ApiError) -> bool:
    """Whether a failed mass call left the day's quota unused (so another attempt may use it).

    Not when it may have been delivered (its fate is unknown, 45065 included), or after 45028
    (the day's quota is gone: more calls would only fail the same way).
    """
    return exc.fate != UNKNOWN and exc.code != 45028


# --- a subscription account's one broadcast a day (the tag channel's) ----------------------------


def mass_day(timezone: str, now: float) -> str:
    """The account's local date at ``now``: a subscription account's mass quota is per day."""
    return dt.datetime.fromtimestamp(now, ZoneInfo(timezone)).date().isoformat()


def claim_mass_day(r: redis.Redis, day: str, holder: str) -> bool:
    """Take ``day``'s one mass send for ``holder`` (a run and chunk); True if it is theirs.

    A holder that already has it (a retry of the same chunk) gets it again.
    """
    key = Keys.push_mass_day(day)
    if r.set(key, holder, nx=True, ex=MASS_DAY_TTL):
        return True
    return r.get(key) == holder


def release_mass_day(r: redis.Redis, day: str, holder: str) -> bool:
    """Give ``day``'s mass send back if ``holder`` still has it (its call sent nothing)."""
    return drop_if_same(r, Keys.push_mass_day(day), holder)


# --- deferred sends and recovery ----------------------------------------------------------------


def sweep(services: Services, limit: int = 5000) -> Counter[str]:
    """Re-decide the sends quiet hours deferred that are now due."""
    r = services.redis
    now = clock.now()
    due = r.zrangebyscore(Keys.push_due(), "-inf", now, start=0, num=limit)
    by_run: dict[str, list[str]] = {}
    pipe = r.pipeline(transaction=False)
    for openid in due:
        pipe.hgetall(Keys.push_pending(openid))
    for openid, pending in zip(due, pipe.execute(), strict=True):
        if not pending:
            r.zrem(Keys.push_due(), openid)
        for run, at in pending.items():
            if float(at) <= now:
                by_run.setdefault(run, []).append(openid)
    counts: Counter[str] = Counter()
    for run, openids in by_run.items():
        try:
            counts.update(process_chunk(services, run, openids))
        except ValueError as exc:  # the digest was removed from push.yaml
            log.warning("deferred sends of %s dropped: %s", run, exc)
            for openid in openids:
                r.hdel(Keys.push_pending(openid), run)
    return counts


def reconcile(services: Services, run: str) -> Counter[str]:
    """Close a run: stale reservations become ``unknown``, undecided subscribers get a decision.

    Run it once the run's chunk jobs are finished or dead (the scheduler does, a few minutes
    after the slot). Deferred sends stay with :func:`sweep`.
    """
    r = services.redis
    name, slot = parse_run(run)
    if services.config.push.digest(name).channel == "visit":
        return Counter()  # an edition is decided on replies, each at once: nothing to close
    ledger = r.hgetall(Keys.push_ledger(run))
    counts: Counter[str] = Counter()
    stale = [
        openid for openid, value in ledger.items()
        if value.startswith("reserved|")
        and clock.now() - float(value.split("|")[1]) >= LEASE_SECONDS
    ]
    missing = [o for batch in members(r, CHUNK_SIZE, until=slot) for o in batch if o not in ledger]
    for i in range(0, len(stale) + len(missing), CHUNK_SIZE):
        batch = (stale + missing)[i:i + CHUNK_SIZE]
        counts.update(process_chunk(services, run, batch))
    r.hset(Keys.push_plan(run), "reconciled", repr(clock.now()))
    return counts
