"""Digests in flight: a stop never overtakes a send, so "已退订" is never followed by a digest.

A chunk decides for hundreds of subscribers at once, then calls the API for each in turn, a
second or two in all; a 退订 (or an unfollow) acknowledged in between used to be followed by the
digest it did not stop (bench/failover.py counted 42 of 470 stops in a run without failover). Now:

- the sender *claims* the next few sends just before their API calls (:func:`claim`, one Lua
  call for a group of about :data:`GROUP_SECONDS` of calls): it re-reads each subscriber's record
  and goes on only with those who follow with digests on, marking their sends in flight
  (``Keys.push_sending``: openid -> "run|time") in the same atomic step; it releases the group
  once its calls are over (with the next group's claim);
- the stop or unfollow handler, after its own writes, waits while a send to that subscriber is
  in flight (:func:`wait_for`) before it answers.

Either the claim comes first (the stop waits for the send, and is acknowledged after it), or the
stop's write does (the claim sees it and nothing is sent). A marker older than
:data:`STALE_SECONDS` (its worker died mid-call) is not waited for.

On replicated Redis the sender also waits for the replicas to hold the claim before calling the
API (:func:`bot.state.durable`): a primary cut off from its replicas (a split brain: frozen, its
replacement promoted, then awake again) would otherwise answer a claim from data the stop never
reached. One wait per group, not per send: claiming one by one halved a worker's rate.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import redis

from bot.state import Keys, Lua

STALE_SECONDS = 30.0
"""A send marked in flight longer than this was abandoned (its worker died)."""

WAIT_SECONDS = 5.0
"""The longest a stop waits for a send in flight (an API call's own timeout is shorter)."""

GROUP_SECONDS = 0.2
"""About how long the API calls of one claimed group take: what a stop may wait beyond its own
subscriber's call."""

GROUP_MOST = 64
"""The most sends claimed at once (a fast API: the no-op of the benchmarks, the simulator)."""

CLAIM = Lua("""
local sending, ended = KEYS[1], tonumber(ARGV[3])
for i = 1, ended do redis.call('HDEL', sending, ARGV[3 + i]) end
local out = {}
for i = 2, #KEYS do
  local openid = ARGV[2 + ended + i]
  local user = redis.call('HMGET', KEYS[i], 'subscribed', 'digests')
  if user[1] ~= '1' then out[#out + 1] = 'skipped-unsubscribed'
  elseif user[2] == 'off' then out[#out + 1] = 'skipped-optout'
  else
    redis.call('HSET', sending, openid, ARGV[1] .. '|' .. ARGV[2])
    out[#out + 1] = 'go'
  end
end
return out
""")
"""KEYS: ``Keys.push_sending``, then each claimed subscriber's record; ARGV: run, now, the number
of openids whose sends ended, those openids, then the claimed openids. Per claimed openid ``go``,
or why not."""


def claim(
    r: redis.Redis, openids: Sequence[str], run: str, ended: Sequence[str] = ()
) -> list[str]:
    """Per openid, ``go`` when the digest of ``run`` may go to them now (it is then in flight),
    else the reason it may not (``skipped-optout``, ``skipped-unsubscribed``); releases the sends
    to ``ended`` first."""
    answer = CLAIM(r, [Keys.push_sending(), *map(Keys.user, openids)],
                   [run, repr(time.time()), len(ended), *ended, *openids])
    return [a.decode() if isinstance(a, bytes) else str(a) for a in answer]


def release(r: redis.Redis, openids: Sequence[str]) -> None:
    """The sends to ``openids`` are over (sent or not)."""
    if openids:
        CLAIM(r, [Keys.push_sending()], ["", "", len(openids), *openids])


def group_size(seconds_per_send: float) -> int:
    """How many sends to claim at once, at ``seconds_per_send`` (0: not measured yet)."""
    if seconds_per_send <= 0:
        return 8
    return max(1, min(GROUP_MOST, int(GROUP_SECONDS / seconds_per_send)))


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
