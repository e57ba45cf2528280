"""The ``visit`` digest channel: what is new rides on the reply to the subscriber's own message.

Every kind of account may answer a message it receives (a passive reply), and an unverified one
can do nothing else: it has no customer-service or mass-send API. So when a subscriber writes
and articles they have not seen match them, :func:`offer` adds a short "new since your last
visit" block (titles only) to the answer they asked for. It is a digest like any other: one
decision per subscriber and *edition* (the digest's run at the latest slot of its schedule), by
the same throttle (opt-out, unsubscribed, 90 days silent, nothing relevant, caps per day and
week, the account's daily cap) in the same ledger and report, and their cursor moves past what it
showed. It never displaces the answer: it is offered only when it fits in the same 2048-byte reply.

What differs from a scheduled digest: nothing is sent at the slot (the scheduler plans no run for
a visit digest); the 48 h window does not apply (they just wrote); quiet hours never defer it,
they hold it back (a message at 23:30 gets the answer alone, the first one after 08:00 gets the
news too), so no decision is recorded then.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from bot import clock
from bot.push import runs
from bot.push.selection import Item
from bot.state import RUN_TTL, Keys

if TYPE_CHECKING:
    from bot.services import Services

log = logging.getLogger(__name__)

MARKS = {"zh": "自你上次来访的新文章：", "en": "New since your last visit:"}
"""The first line of the block, by language (what a reader of the chat, or of the simulator's
delivery log, recognises it by)."""

FOOT = {"zh": "（回复「退订」不再附带）", "en": "(Reply 'stop' to turn these off.)"}

_editions: set[str] = set()
"""Runs this process has registered in ``Keys.push_runs`` (once per process and edition)."""

KNOWN_MAX = 100_000
"""Entries of :data:`_known` at most (then it starts again)."""

_known: dict[tuple[str, str], float] = {}
"""``(run, openid)`` -> until when nothing is to be offered: decided for the edition (for ever),
or in quiet hours (until they end). Saves a question the round trip of asking the ledger again;
a process that does not know asks Redis, which is the truth."""


def _remember(run: str, openid: str, until: float) -> None:
    if len(_known) >= KNOWN_MAX:
        _known.clear()
    _known[(run, openid)] = until


def offer(services: Services, openid: str, room: int) -> str:
    """The block to append to ``openid``'s reply now ('' for none), at most ``room`` bytes.

    A block returned is recorded as sent: call this only for a reply that will carry it.
    """
    digest = next((d for d in services.config.push.digests if d.channel == "visit"), None)
    if digest is None or room <= 0:
        return ""
    now = clock.now()
    slot = runs.last_slot(digest, services.config.account.timezone, now)
    run = runs.run_id(digest.name, slot)
    if _known.get((run, openid), 0) > now:
        return ""  # decided for this edition, or in quiet hours: no round trip to learn it again
    r = services.redis
    if r.hexists(Keys.push_ledger(run), openid):
        _remember(run, openid, float("inf"))
        return ""  # decided for this edition already
    candidates, picks, langs, _ = runs.candidates_of(services, digest, slot, [openid], now)
    candidate = candidates[0]
    quiet = next((end for start, end in candidate.quiet if start <= now < end), None)
    if quiet is not None:
        _remember(run, openid, quiet)
        return ""  # quiet hours: hold it for a message after them
    block = render(picks[openid], langs[openid])
    if candidate.has_content and len(block.encode("utf-8")) > room:
        return ""  # it would push the answer out of the reply: wait for a shorter one
    _register(r, run, slot)
    throttle = runs.throttle_for(services, digest, run, now)
    decision = throttle.decide([candidate])[0]
    _remember(run, openid, float("inf"))
    if decision.reason != "reserved":
        return ""
    throttle.settle([(decision, "sent", "reply")])
    log.info("visit digest %s to %s: %d articles", run, openid, len(picks[openid]))
    return block


def render(picked: list[Item], lang: str) -> str:
    """The block: a separator, the mark, one title a line, how to stop it."""
    lang = lang if lang in MARKS else "zh"
    titles = "\n".join(f"· {item.title}" for item in picked)
    return f"\n\n——\n{MARKS[lang]}\n{titles}\n{FOOT[lang]}"


def _register(r, run: str, slot: float) -> None:  # noqa: ANN001 - redis client
    """List the edition among the runs (for ``push report``), as done and closed: the scheduler
    neither plans nor reconciles it."""
    if run in _editions:
        return
    pipe = r.pipeline()
    pipe.zadd(Keys.push_runs(), {run: slot})
    pipe.hset(Keys.push_plan(run), mapping={
        "scheduled": repr(slot), "state": "planned", "chunks": 0, "reconciled": repr(slot),
    })
    pipe.expire(Keys.push_plan(run), RUN_TTL)
    pipe.execute()
    _editions.add(run)
