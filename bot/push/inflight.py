"""Digests in flight: a stop never overtakes a send, so "已退订" is never followed by a digest.

A chunk decides for hundreds of subscribers at once, then calls the API for each in turn, a
second or two in all; a 退订 (or an unfollow) acknowledged in between used to be followed by the
digest it did not stop (bench/failover.py counted 42 of 470 stops in a run without failover). Now:

- the sender *claims* each send just before its API call (:func:`claim`, one Lua call): it
  re-reads the subscriber's record and goes on only while they follow with digests on, marking
  the send in flight (``Keys.push_sending``: openid -> "run|time") in the same atomic step, and
  releases it after the call (with the next claim);
- the stop or unfollow handler, after its own writes, waits while a send to that subscriber is
  in flight (:func:`wait_for`) before it answers.

Either the claim comes first (the stop waits for the send, and is acknowledged after it), or the
stop's write does (the claim sees it and nothing is sent). A marker older than
:data:`STALE_SECONDS` (its worker died mid-call) is not waited for.
"""

from __future__ import annotations

import time

import redis

from bot.state import Keys, Lua

STALE_SECONDS = 30.0
"""A send marked in flight longer than this was abandoned (its worker died)."""

WAIT_SECONDS = 5.0
"""The longest a stop waits for a send in flight (an API call's own timeout is shorter)."""

CLAIM = Lua("""
if ARGV[4] ~= '' then redis.call('HDEL', KEYS[2], ARGV[4]) end
if ARGV[1] == '' then return 0 end
local user = redis.call('HMGET', KEYS[1], 'subscribed', 'digests')
if user[1] ~= '1' then return 'skipped-unsubscribed' end
if user[2] == 'off' then return 'skipped-optout' end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2] .. '|' .. ARGV[3])
return 'go'
""")
"""KEYS: the subscriber's record, ``Keys.push_sending``; ARGV: openid ('' for none), run, now,
the openid whose send ended ('' for none). ``go``, or why not."""


def claim(r: redis.Redis, openid: str, run: str, ended: str = "") -> str:
    """``go`` when the digest of ``run`` may go to ``openid`` now (it is then in flight), else
    the reason it may not (``skipped-optout``, ``skipped-unsubscribed``); releases ``ended``'s
    send first."""
    answer = CLAIM(r, [Keys.user(openid), Keys.push_sending()],
                   [openid, run, repr(time.time()), ended])
    return answer.decode() if isinstance(answer, bytes) else str(answer)


def release(r: redis.Redis, openid: str) -> None:
    """The send to ``openid`` is over (sent or not)."""
    CLAIM(r, [Keys.user(openid), Keys.push_sending()], ["", "", "", openid])


def wait_for(r: redis.Redis, openid: str) -> None:
    """Return once no digest send to ``openid`` is in flight (at most :data:`WAIT_SECONDS`)."""
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        marker = r.hget(Keys.push_sending(), openid)
        if not marker:
            return
        started = float(marker.rpartition("|")[2] or 0)
        if time.time() - started > STALE_SECONDS:
            return
        time.sleep(0.01)
