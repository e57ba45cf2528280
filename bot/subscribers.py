"""Subscribers: their record, preferences, interaction windows, interests and chat commands.

The handlers call one function per thing that happens (:func:`on_follow`, :func:`on_unfollow`,
:func:`learn`) and :func:`chat_command` before answering a text; each message's activity
(:func:`on_activity`) is recorded by the webhook inside its dedup claim, from
:func:`activity_commands`. The push jobs read the record through :func:`record`. The record is
the hash ``Keys.user(openid)``::

    subscribed  "1" while following            since      follow time
    lang        zh or en (last command/question)
    digests     "on" or "off" (退订 / 订阅)      per_day, per_week   the subscriber's own caps
    quiet       "22-8", or "off"                tz         an IANA zone (default: the account's)
    last_msg    last message (opens the 48 h customer-service window)
    last_act    last follow, scan or click (opens the 1 min window)
    last_seen   last of either (90 days of silence stop digests)

The push throttle keeps, in hashes with one field per subscriber, their digest cursors
(``Keys.push_cursors``) and sliding logs of sends: customer-service (the 48 h window's quota),
digest and mass. Unsubscribing deletes every key of ``Keys.personal`` and every field of
``Keys.personal_fields`` and cancels deferred digests; only the digest and mass send logs
(``Keys.push_logs``, ``Keys.push_mass_logs``) stay until their entries age out, because they are
what keeps a quick re-follow within the caps. The unfollow's time stays a day (``Keys.gone``,
:data:`GONE_SECONDS`): writes on behalf of anything from before it, landing after it, are skipped.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from functools import cache
from zoneinfo import available_timezones

import redis

from bot import clock
from bot.config import Config, Limits
from bot.push import inflight
from bot.state import Keys, durable, durably, epoch
from bot.state.writes import Command, Writes, unless_after

MESSAGE_WINDOW = 48 * 3600
"""Seconds after a user message during which customer-service messages may be sent."""

MESSAGE_WINDOW_SENDS = 5
"""Customer-service messages allowed within that window."""

EVENT_WINDOW = 60
"""Seconds after a follow, scan or click during which customer-service messages may be sent."""

EVENT_WINDOW_SENDS = 3
"""Customer-service messages allowed within that window."""

INTERESTS_KEPT = 50
"""How many interest terms a subscriber keeps (the strongest)."""

ACTIVITIES = ("message", "follow", "scan", "click")
"""What :func:`on_activity` records: a message opens the 48 h window, the rest the 1 min one."""


def record(r: redis.Redis, openid: str) -> dict[str, str]:
    """The subscriber's record (empty when unknown or unsubscribed)."""
    return r.hgetall(Keys.user(openid))


def on_follow(r: redis.Redis, openid: str, scene: str = "", digests: bool = True) -> None:
    """A follow (``scene`` from a QR code when given): subscribed, digests on by default.

    Unless they unfollowed after this moment (a follow handled late): see :data:`GONE_SECONDS`.
    """
    now = clock.now()
    fields = {
        "subscribed": "1",
        "since": f"{now:.3f}",
        "last_act": f"{now:.3f}",
        "last_seen": f"{now:.3f}",
    }
    if scene:
        fields["scene"] = scene
    key = Keys.user(openid)
    batch = Writes(fence=(Keys.gone(openid), now))
    batch.hset(key, mapping=fields)
    batch.hsetnx(key, "digests", "on" if digests else "off")
    batch.zadd(Keys.push_members(), {openid: now})
    batch.close_fence()
    batch.send(r)


GONE_SECONDS = 24 * 3600
"""How long an unfollow's time is kept (``Keys.gone``). Until then, writes on behalf of anything
that happened before it (a message or a follow whose handling a failover or a slow handler held
back past the unfollow) are skipped: they neither bring the subscriber back nor leave personal
data behind the purge. On the platform, someone who unfollowed cannot message the account
without following again, and the follow comes first; a day is far longer than any handling."""


def on_unfollow(r: redis.Redis, openid: str) -> None:
    """Unfollowed: purge personal data and cancel queued (deferred) digests.

    The purge is made again until the replicas hold it (:func:`bot.state.durably`): a failover
    must not bring back who unfollowed (and push to them), and nobody can be asked to unfollow
    again. :class:`bot.state.NotDurable` if they still do not after about 30 s.
    """

    def purge() -> None:
        pipe = r.pipeline()
        _purge(pipe, openid)
        pipe.zrem(Keys.push_members(), openid)
        pipe.set(Keys.gone(openid), f"{clock.now():.6f}", ex=GONE_SECONDS)
        pipe.execute()

    durably(r, purge)
    inflight.wait_for(r, openid)  # a digest already on its way lands before we go on


def _purge(pipe: redis.client.Pipeline, openid: str) -> None:
    """Queue the deletion of ``openid``'s personal keys and fields, of deferred digests and of
    their place among the askers of unanswered questions (:mod:`bot.unanswered`)."""
    pipe.delete(*Keys.personal(openid))
    for key in Keys.personal_fields():
        pipe.hdel(key, openid)
    pipe.zrem(Keys.push_due(), openid)
    pipe.zrem(Keys.asked_by(), openid)


def forget(r: redis.Redis, openid: str) -> None:
    """忘记我 / forget me: delete everything kept about ``openid`` but what honours their choices.

    What stays: that they follow (``subscribed``, their place in ``Keys.push_members``), an
    opt-out (``digests off``), and the digest and mass send logs that keep the caps (they age
    out by themselves). Gone: the record's other fields (language, time zone, quiet hours, caps,
    follow and activity times, scene), the session, QR scenes, interests, deferred digests, the
    customer-service log and the digest cursors; the cached answers to their messages go in a
    job (:func:`forget_cached_job`), since finding them means scanning the keyspace.
    """
    key = Keys.user(openid)
    since = epoch(r)
    kept = {name: value for name, value in r.hgetall(key).items() if name in FORGET_KEEPS}
    if kept.get("digests") != "off":
        kept.pop("digests", None)
    pipe = r.pipeline()
    _purge(pipe, openid)
    if kept:
        pipe.hset(key, mapping=kept)
    pipe.execute()
    durable(r, since)


FORGET_KEEPS = frozenset({"subscribed", "digests"})
"""Fields of the record that 忘记我 keeps: that they follow, and an opt-out."""


def forget_cached(r: redis.Redis, openid: str) -> int:
    """Delete the cached answers (and late answers) to ``openid``'s messages; how many."""
    deleted = 0
    for pattern in Keys.cached_answers(openid):
        batch = list(r.scan_iter(match=pattern, count=1000))
        for i in range(0, len(batch), 500):
            deleted += int(r.delete(*batch[i : i + 500]))
    return deleted


def forget_cached_job(openid: str) -> int:
    """The RQ job of :func:`forget_cached`, on this worker's Redis."""
    from bot import services

    return forget_cached(services.current().redis, openid)


def on_activity(r: redis.Redis, openid: str, kind: str) -> None:
    """Any user message (``message``) or follow/scan/click: last interaction and windows.

    A message from someone the bot has no record of (a follower from before the bot existed)
    makes them a subscriber with the defaults. The webhook makes these same writes through
    :func:`activity_commands`, inside its dedup claim (:mod:`bot.inbound.delivery`).
    """
    batch = Writes()  # one round trip
    batch.commands = activity_commands(openid, kind)
    batch.send(r)


def activity_commands(openid: str, kind: str) -> list[Command]:
    """The writes of :func:`on_activity`, as commands for a caller that sends them itself
    (in a batch of :mod:`bot.state.writes`): none when they unfollowed since (``Keys.gone``)."""
    if kind not in ACTIVITIES:
        raise ValueError(f"unknown activity {kind!r}; expected one of {', '.join(ACTIVITIES)}")
    at = clock.now()
    now = f"{at:.3f}"
    key = Keys.user(openid)
    return unless_after(Keys.gone(openid), at, [
        ("HSETNX", key, "subscribed", "1"),  # someone unknown: a follower from before the bot
        ("HSETNX", key, "since", now),
        ("HSETNX", key, "digests", "on"),
        ("ZADD", Keys.push_members(), "NX", repr(at), openid),
        ("HSET", key, "last_seen", now, "last_msg" if kind == "message" else "last_act", now),
    ])


def learn(
    r: redis.Redis | Writes, openid: str, terms: Iterable[str], lang: str = ""
) -> None:
    """Strengthen the interest terms of a question (the analyzer's tokens); keep the top ones.

    Given a batch (:class:`bot.state.writes.Writes`) or a pipeline, the commands join it and the
    caller sends them.
    """
    key = Keys.push_interests(openid)
    unique = {t for t in terms if t.strip()}
    batch = r if isinstance(r, (Writes, redis.client.Pipeline)) else r.pipeline()
    for term in unique:
        batch.zincrby(key, 1, term)
    batch.zremrangebyrank(key, 0, -INTERESTS_KEPT - 1)
    if lang in ("zh", "en"):
        batch.hset(Keys.user(openid), "lang", lang)
    if batch is not r:
        batch.execute()


def interests(r: redis.Redis, openid: str) -> dict[str, float]:
    """The subscriber's interest terms and weights."""
    return dict(r.zrange(Keys.push_interests(openid), 0, -1, withscores=True))


# --- preferences --------------------------------------------------------------------------------


class Preferences:
    """What a subscriber chose, with the account's limits filling the gaps and bounding them."""

    def __init__(self, user: dict[str, str], limits: Limits, account_tz: str) -> None:
        self.digests = user.get("digests", "on") == "on"
        self.per_day = min(_int(user.get("per_day"), limits.per_day), limits.per_day)
        self.per_week = min(_int(user.get("per_week"), limits.per_week), limits.per_week)
        self.per_day = min(self.per_day, self.per_week)
        self.tz = user.get("tz") or account_tz
        quiet = user.get("quiet") or f"{limits.quiet_start}-{limits.quiet_end}"
        self.quiet: tuple[int, int] | None = None if quiet == "off" else _hours(quiet)
        self.lang = user.get("lang") or "zh"


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default


def _hours(text: str) -> tuple[int, int] | None:
    start, _, end = text.partition("-")
    try:
        return int(start), int(end)
    except ValueError:
        return None


def preferences(r: redis.Redis, openid: str, config: Config) -> Preferences:
    """The subscriber's effective preferences."""
    return Preferences(record(r, openid), config.push.limits, config.account.timezone)


# --- chat commands ------------------------------------------------------------------------------

_COMMANDS: list[tuple[re.Pattern[str], str, str]] = [
    (re.compile(r"^(退订|td)$", re.I), "stop", "zh"),
    (re.compile(r"^(stop|unsubscribe)$", re.I), "stop", "en"),
    (re.compile(r"^订阅$"), "start", "zh"),
    (re.compile(r"^(start|subscribe)$", re.I), "start", "en"),
    (re.compile(r"^设置$"), "settings", "zh"),
    (re.compile(r"^settings?$", re.I), "settings", "en"),
    (re.compile(r"^帮助$"), "help", "zh"),
    (re.compile(r"^help$", re.I), "help", "en"),
    (re.compile(r"^忘记我$"), "forget", "zh"),
    (re.compile(r"^forget\s+me$", re.I), "forget", "en"),
    (re.compile(r"^频率\s*(?P<arg>.*)$"), "frequency", "zh"),
    (re.compile(r"^frequency\b\s*(?P<arg>.*)$", re.I), "frequency", "en"),
    (re.compile(r"^免打扰\s*(?P<arg>.*)$"), "quiet", "zh"),
    (re.compile(r"^quiet\b\s*(?P<arg>.*)$", re.I), "quiet", "en"),
    (re.compile(r"^时区\s*(?P<arg>.*)$"), "timezone", "zh"),
    (re.compile(r"^(timezone|time\s+zone)\b\s*(?P<arg>.*)$", re.I), "timezone", "en"),
]

_TEXTS = {
    "stop": ("已退订推送，不会再收到摘要。发送「订阅」可恢复。",
             "Digests stopped: you will get no more. Send 'start' to resume."),
    "gone": ("你已取消关注，设置没有改动。",
             "You no longer follow this account; nothing was changed."),
    "stop-again": ("你已经退订了推送。发送「订阅」可恢复。",
                   "Digests are already off. Send 'start' to resume."),
    "start": ("已恢复推送。", "Digests are on again."),
    "forget": ("已忘记你的兴趣和提问记录。", "I have forgotten your interests and questions."),
    "frequency-bad": ("请发送「频率 N」，N 为每周 1 到 {week} 篇（每天最多 {day} 篇）。",
                      "Send 'frequency N' with N from 1 to {week} digests a week ({day} a day)."),
    "frequency": ("好的：每周最多 {week} 篇，每天最多 {day} 篇。",
                  "OK: at most {week} digests a week, {day} a day."),
    "quiet-bad": ("请发送「免打扰 22-8」（0 到 23 点），或「免打扰 关」。",
                  "Send 'quiet 22-8' (hours 0 to 23), or 'quiet off'."),
    "quiet": ("好的：{start}:00 到 {end}:00 不推送。",
              "OK: nothing between {start}:00 and {end}:00."),
    "quiet-off": ("已关闭免打扰。", "Quiet hours are off."),
    "timezone-bad": ("不认识时区「{zone}」，请用 Asia/Shanghai 这样的名称。",
                     "Unknown time zone '{zone}'; use a name like Europe/London."),
    "timezone": ("时区已设为 {zone}。", "Time zone set to {zone}."),
    "help": (
        "直接提问，我从文章里找答案。推送命令：\n"
        "「退订」停止推送 ·「订阅」恢复 ·「设置」查看设置\n"
        "「频率 2」每周最多 2 篇 ·「免打扰 22-8」·「时区 Asia/Shanghai」\n"
        "「忘记我」清除兴趣记录",
        "Ask a question and I quote our articles. Digest commands:\n"
        "'stop' ends digests · 'start' resumes · 'settings' shows them\n"
        "'frequency 2' at most 2 a week · 'quiet 22-8' · 'timezone Europe/London'\n"
        "'forget me' clears what I learned about your interests",
    ),
}

_OFF_WORDS = frozenset({"off", "关", "关闭", "无", "none"})


def _say(name: str, lang: str, **values: object) -> str:
    zh, en = _TEXTS[name]
    return (zh if lang == "zh" else en).format(**values)


COMMAND_MAX_CHARS = 100
"""A message longer than this is never a chat command (it is a question)."""

_CJK_GAP = re.compile(r"(?<=[\u3400-\u9fff])\s+(?=[\u3400-\u9fff])")


def command_text(text: str) -> str:
    """``text`` as people mean it, to match commands (「退 订。」 -> 退订, "STOP!" -> STOP).

    Full-width forms and compatibility characters are folded (NFKC), invisible format characters
    (zero-width spaces, joiners, BOMs) dropped, runs of white space made one space and the spaces
    between two Chinese characters removed, and punctuation or symbols around the whole text
    stripped.
    """
    folded = unicodedata.normalize("NFKC", text)
    folded = "".join(ch for ch in folded if unicodedata.category(ch) != "Cf")
    folded = _CJK_GAP.sub("", " ".join(folded.split()))
    start, end = 0, len(folded)
    while start < end and unicodedata.category(folded[start])[0] in "PSZ":
        start += 1
    while end > start and unicodedata.category(folded[end - 1])[0] in "PSZ":
        end -= 1
    return folded[start:end]


def parse_command(text: str) -> tuple[str, str, str] | None:
    """(command, language, argument) when ``text`` is a digest chat command, written any way."""
    if len(text) > COMMAND_MAX_CHARS:
        return None
    stripped = command_text(text)
    for pattern, name, lang in _COMMANDS:
        match = pattern.match(stripped)
        if match:
            return name, lang, (match.groupdict().get("arg") or "").strip()
    return None


def chat_command(r: redis.Redis, openid: str, text: str, config: Config) -> str | None:
    """The answer to a digest chat command, in the language it was typed in; None otherwise."""
    parsed = parse_command(text)
    return None if parsed is None else answer_command(r, openid, parsed, config)


def answer_command(
    r: redis.Redis, openid: str, parsed: tuple[str, str, str], config: Config
) -> str:
    """Carry out a command :func:`parse_command` read; the answer, in its language."""
    name, lang, arg = parsed
    key = Keys.user(openid)
    if not r.hexists(key, "subscribed"):
        if r.exists(Keys.gone(openid)):  # unfollowed since this message came: nothing to change
            return _say("gone", lang)
        on_follow(r, openid)  # a follower from before the bot
    if name != "forget":
        r.hset(key, "lang", lang)
    limits = config.push.limits
    if name == "stop":
        since = epoch(r)
        was_on = r.hget(key, "digests") != "off"
        r.hset(key, "digests", "off")
        r.delete(Keys.push_pending(openid))
        r.zrem(Keys.push_due(), openid)
        r.sadd(Keys.push_tag_changes(), openid)  # out of the digest tags (bot.push.tags.sync)
        durable(r, since)  # said "stopped" only once a failover cannot lose it
        inflight.wait_for(r, openid)  # and once no digest to them is on its way
        return _say("stop" if was_on else "stop-again", lang)
    if name == "start":
        r.hset(key, "digests", "on")
        return _say("start", lang)
    if name == "settings":
        return settings_text(r, openid, config, lang)
    if name == "help":
        return _say("help", lang)
    if name == "forget":
        forget(r, openid)
        return _say("forget", lang)
    if name == "frequency":
        return _frequency(r, key, arg, limits, lang)
    if name == "quiet":
        return _quiet(r, key, arg, lang)
    return _timezone(r, key, arg, lang)


def _frequency(r: redis.Redis, key: str, arg: str, limits: Limits, lang: str) -> str:
    if not re.fullmatch(r"[0-9]{1,3}", arg) or not 1 <= int(arg) <= limits.per_week:
        return _say("frequency-bad", lang, week=limits.per_week, day=limits.per_day)
    week = int(arg)
    day = min(week, limits.per_day)
    r.hset(key, mapping={"per_week": week, "per_day": day})
    return _say("frequency", lang, week=week, day=day)


def _quiet(r: redis.Redis, key: str, arg: str, lang: str) -> str:
    if arg.casefold() in _OFF_WORDS:
        r.hset(key, "quiet", "off")
        return _say("quiet-off", lang)
    match = re.fullmatch(r"(\d{1,2})\s*[-~到至]\s*(\d{1,2})", arg)
    if not match:
        return _say("quiet-bad", lang)
    start, end = int(match.group(1)), int(match.group(2))
    if start > 23 or end > 23 or start == end:
        return _say("quiet-bad", lang)
    r.hset(key, "quiet", f"{start}-{end}")
    return _say("quiet", lang, start=start, end=end)


ZONE_MAX_CHARS = 40
"""Longer than any IANA zone name: what is longer is not echoed back whole."""


@cache
def _zones() -> frozenset[str]:
    """The IANA zone names this machine knows (from the system or the tzdata package)."""
    return frozenset(available_timezones())


def _timezone(r: redis.Redis, key: str, arg: str, lang: str) -> str:
    if arg not in _zones():  # a name, never a path: "Asia" is a folder of the database
        shown = arg if len(arg) <= ZONE_MAX_CHARS else arg[:ZONE_MAX_CHARS] + "…"
        return _say("timezone-bad", lang, zone=shown or "?")
    r.hset(key, "tz", arg)
    return _say("timezone", lang, zone=arg)


def settings_text(r: redis.Redis, openid: str, config: Config, lang: str = "") -> str:
    """The subscriber's current preferences, in their language (设置 / settings, menu action)."""
    prefs = preferences(r, openid, config)
    lang = lang or prefs.lang
    quiet = f"{prefs.quiet[0]}:00-{prefs.quiet[1]}:00" if prefs.quiet else None
    if lang == "zh":
        return "\n".join([
            "推送：" + ("开" if prefs.digests else "关（发送「订阅」恢复）"),
            f"频率：每天最多 {prefs.per_day} 篇，每周最多 {prefs.per_week} 篇",
            "免打扰：" + (quiet or "关"),
            f"时区：{prefs.tz}",
        ])
    return "\n".join([
        "Digests: " + ("on" if prefs.digests else "off (send 'start' to resume)"),
        f"Frequency: at most {prefs.per_day} a day, {prefs.per_week} a week",
        "Quiet hours: " + (quiet or "off"),
        f"Time zone: {prefs.tz}",
    ])
