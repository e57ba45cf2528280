"""The ``tag`` digest channel: one broadcast to a WeChat tag the bot keeps in step.

A verified account may broadcast (``message/mass/sendall``) to the members of a user tag, as
they are at the moment of the call: once a day for a subscription account, four times a month
per follower for a service account. The bot keeps one tag per tag digest (named
``digest-<name>``, its id cached in ``Keys.push_tag``) holding exactly who may receive it.

Kept in step two ways, so that tagging (50 openids a call, against a daily API quota) is spent
on who changed, never on re-tagging everyone:

- as it happens: who says stop is queued (``Keys.push_tag_changes``) and :func:`sync` untags them
  at the scheduler's next tick, so even the operator's own broadcast to the tag from WeChat's
  console leaves them out;
- just before the call, :func:`broadcast` decides for every subscriber with the throttle (which
  reserves each send in the run's ledger: caps, silence, opt-out, relevance, and quiet hours at
  send time), reads the tag's members from the platform (``user/tag/get``, 10,000 a page), and
  tags and untags only the difference. Who turned silent or reached a cap since the last
  broadcast, and who followed, is found here: those depend on the moment of sending. Anyone in
  the difference who said stop meanwhile is left out; then one ``sendall`` goes to the tag and the
  ledger records, per subscriber, that it reached them (``sent``), or why not.

If untagging fails, nothing is sent (the tag could still hold someone who must not get it) and the
run is retried; if tagging someone fails, they are recorded ``failed-api`` and the rest get it.
An attempt that died (a killed worker) leaves its reservations: the retry takes them back
(``reclaim``, once they are older than the lease) and makes the call with the same
``clientmsgid``, which the platform refuses (45065, recorded ``unknown``) if it went out before.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from bot import clock
from bot.config import Digest
from bot.push import receipts, runs
from bot.push.selection import BOTH, render
from bot.push.throttle import Decision
from bot.state import Keys
from bot.wechat.api import MASS_TAG_MEMBERS, ApiError

if TYPE_CHECKING:
    from bot.services import Services

log = logging.getLogger(__name__)

MAX_WAIT = 1800
"""Longest a broadcast waits for the previous one to be 24 h old (longer: it goes now, and the
caps leave out whoever got the previous one)."""

DECIDE_BATCH = 1000
"""Subscribers decided (and settled) per throttle call."""

SYNC_BATCH = 1000
"""Queued opt-outs untagged per scheduler tick at most."""

TAG_EXISTS = 45157
"""``tags/create``: the name is taken (another process created it first)."""

NO_TAG = 45159
"""The tag id is not the account's (the operator deleted the tag in WeChat's console)."""


class NotYet(Exception):
    """The previous broadcast is not 24 h old: the caps would leave out everyone it reached.

    A daily digest decides at about the same minute each day, and a broadcast's sends are logged
    when they are settled, a minute or two after its decisions began: without waiting, every
    second day's broadcast would find its whole audience capped. ``seconds`` is the wait.
    """

    def __init__(self, seconds: float) -> None:
        super().__init__(f"the previous broadcast is 24 h old in {seconds:.0f} s")
        self.seconds = seconds


def tag_name(digest: Digest) -> str:
    """The tag of ``digest`` as operators see it in WeChat's console."""
    return f"digest-{digest.name}"


def tag_id(services: Services, digest: Digest) -> int:
    """The id of ``digest``'s tag, found by name or created (cached in Redis)."""
    r = services.redis
    cached = r.hget(Keys.push_tag(digest.name), "id")
    if cached:
        return int(cached)
    name = tag_name(digest)
    found = services.api.tags().get(name)
    if found is None:
        try:
            found = services.api.create_tag(name)
        except ApiError as exc:
            if exc.code != TAG_EXISTS:
                raise
            found = services.api.tags()[name]
        log.info("created tag %s (id %d) for digest %s", name, found, digest.name)
    r.hset(Keys.push_tag(digest.name), "id", found)
    return found


def _members(services: Services, digest: Digest) -> tuple[int, set[str]]:
    """``(tag id, its members now)``; a tag deleted behind the bot's back is made again."""
    tag = tag_id(services, digest)
    try:
        return tag, set(services.api.tagged(tag))
    except ApiError as exc:
        if exc.code != NO_TAG:
            raise
    log.warning("tag %d of digest %s is gone (deleted in the console?): making it again", tag,
                digest.name)
    services.redis.hdel(Keys.push_tag(digest.name), "id")
    tag = tag_id(services, digest)
    return tag, set(services.api.tagged(tag))


def broadcast(services: Services, run: str, final_attempt: bool = True) -> Counter[str]:
    """Decide, bring the tag in step, send once; the decisions by reason.

    Raises :class:`NotYet` when the previous broadcast is not 24 h old yet (call again then), and
    :class:`~bot.push.runs.RetryLater` when a retry may do better (unless ``final_attempt``).
    """
    r, config = services.redis, services.config
    name, slot = runs.parse_run(run)
    digest = config.push.digest(name)
    now = clock.now()
    previous = r.hgetall(Keys.push_tag(digest.name))
    wait = float(previous.get("last") or -86400) + 86400 + 1 - now
    if previous.get("run") != run and 0 < wait <= MAX_WAIT:
        raise NotYet(wait)
    throttle = runs.throttle_for(services, digest, run, now)
    counts: Counter[str] = Counter()
    reach: dict[str, Decision] = {}
    items: list = []
    busy = 0
    for openids in runs.members(r, DECIDE_BATCH, until=slot):
        candidates, _, _, items = runs.candidates_of(services, digest, slot, openids, now)
        for d in throttle.decide(candidates, reclaim=True):
            if d.reason == "reserved":
                reach[d.openid] = d
            else:
                busy += d.reason == "busy"
                counts[d.reason if d.fresh else "already-decided"] += 1
    if busy and not final_attempt:
        raise runs.RetryLater(f"{run}: {busy} reservations of an attempt that may still run")
    if not reach:
        return counts

    def settle(decisions: Iterable[Decision], outcome: str, detail: str) -> None:
        batch = [(d, outcome, detail) for d in decisions]
        for i in range(0, len(batch), DECIDE_BATCH):
            counts.update(throttle.settle(batch[i:i + DECIDE_BATCH]))

    day = ""
    if config.account.type == "subscription":
        day = runs.mass_day(config.account.timezone, now)
        if not runs.claim_mass_day(r, day, run):
            log.info("%s: %d sends skipped, %s's one mass send is taken by %s", run, len(reach),
                     day, r.get(Keys.push_mass_day(day)))
            settle(reach.values(), "skipped-quota", runs.DAY_TAKEN)
            return counts
    try:
        tag, present = _members(services, digest)
        adding = [o for o in reach if o not in present]
        gone = _left(r, [*adding, *(o for o in _changed(r) if o in reach)])
        removing = [o for o in present if o not in reach or o in gone]
        for batch in _batches(removing):
            services.api.tag_members(tag, batch, add=False)
    except ApiError as exc:
        outcome, detail, _ = runs.failure(exc, final_attempt)
        log.warning("%s: the tag could not be brought in step, nothing sent: %s", run, exc)
        if day:
            runs.release_mass_day(r, day, run)
        settle(reach.values(), outcome, detail)
        if outcome == "retry":
            raise runs.RetryLater(f"{run}: tagging failed ({exc})") from None
        return counts
    for openid, reason in gone.items():
        settle([reach.pop(openid)], reason, "before-call")
    untaggable: list[Decision] = []
    for batch in _batches([o for o in adding if o in reach]):
        try:
            services.api.tag_members(tag, batch)
        except ApiError as exc:
            log.warning("%s: %d subscribers could not be tagged: %s", run, len(batch), exc)
            untaggable.extend(reach.pop(o) for o in batch)
    settle(untaggable, "failed-api", "tagging")
    if not reach:
        return counts
    msg_id = 0
    try:
        msg_id = services.api.mass_send_tag(tag, render(items, BOTH), clientmsgid=run)
        outcome, detail = "sent", ""
    except ApiError as exc:
        outcome, detail, _ = runs.failure(exc, final_attempt)
        if day and runs.nothing_sent(exc):
            runs.release_mass_day(r, day, run)
    settle(reach.values(), outcome, detail)
    if outcome in ("sent", "unknown"):
        r.hset(Keys.push_tag(digest.name), mapping={"last": repr(clock.now()), "run": run})
    if msg_id:
        receipts.record_send(r, str(msg_id), run, len(reach))
    log.info("%s: tag %s, %d tagged, %d untagged, broadcast %s to %d", run, tag,
             len(adding) - len(untaggable), len(removing), outcome, len(reach))
    if outcome == "retry" and not final_attempt:
        raise runs.RetryLater(f"{run}: the broadcast will be retried")
    return counts


def sync(services: Services) -> int:
    """Untag who said stop since the last tick, from every tag digest; how many.

    Who unfollowed is left to the platform (it no longer delivers to them), and who came back
    (said start again) is tagged at the next broadcast.
    """
    r = services.redis
    digests = [d for d in services.config.push.digests if d.channel == "tag"]
    changed = [o for o in r.srandmember(Keys.push_tag_changes(), SYNC_BATCH) or []]
    if not changed:
        return 0
    stopped = [o for o, reason in _left(r, changed).items() if reason == "skipped-optout"]
    try:
        for digest in digests if stopped else ():
            tag = tag_id(services, digest)
            for batch in _batches(stopped):
                services.api.tag_members(tag, batch, add=False)
    except ApiError as exc:  # kept queued: the next tick tries again, the broadcast checks too
        log.warning("untagging %d who said stop failed, will retry: %s", len(stopped), exc)
        return 0
    r.srem(Keys.push_tag_changes(), *changed)
    return len(stopped)


def _changed(r) -> list[str]:  # noqa: ANN001 - redis client
    return list(r.smembers(Keys.push_tag_changes()))


def _left(r, openids: list[str]) -> dict[str, str]:  # noqa: ANN001 - redis client
    """Of ``openids``, who may not get a digest now: openid -> the reason."""
    pipe = r.pipeline(transaction=False)
    for openid in openids:
        pipe.hmget(Keys.user(openid), "subscribed", "digests")
    gone: dict[str, str] = {}
    for openid, (subscribed, digests) in zip(openids, pipe.execute(), strict=True):
        if subscribed != "1":
            gone[openid] = "skipped-unsubscribed"
        elif digests == "off":
            gone[openid] = "skipped-optout"
    return gone


def _batches(openids: list[str]) -> Iterator[list[str]]:
    for i in range(0, len(openids), MASS_TAG_MEMBERS):
        yield openids[i:i + MASS_TAG_MEMBERS]
