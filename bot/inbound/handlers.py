"""What the bot does with each message and event type; knows nothing of HTTP or XML.

A handler takes an :class:`~bot.wechat.message.Inbound` and the bot's
:class:`~bot.services.Services` and returns a reply value (:class:`~bot.wechat.message.Text`,
:class:`~bot.wechat.message.News`) or ``None`` for "no reply".
Handlers register with :data:`registry` by message kind or event name; anything unregistered
falls through to :func:`no_reply`.

A question's answer may carry the news of a ``visit`` digest (:func:`with_news`). What happened
is counted for the console (:mod:`bot.tally`), and a question the articles could not answer is
logged (:mod:`bot.unanswered`), both in the batch sent with the answer.

Writes a handler does not read back (the "more" session, learned interests) go through
:meth:`Services.later`: under the webhook they travel with the stored answer, in the same Redis
round trip. The subscriber's activity is not a handler's business: :func:`activity` lists its
writes, which :mod:`bot.inbound.delivery` makes with its claim, once per delivery.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from bot import subscribers, tally, unanswered, worker
from bot.push import receipts, visits
from bot.state import EVENT_LOG_LENGTH, SESSION_TTL, Keys, NotDurable
from bot.state.writes import Command, Writes
from bot.wechat.message import MESSAGE_KINDS, TEXT_LIMIT_BYTES, Inbound, Reply, Text, fit_text

if TYPE_CHECKING:
    from bot.services import Services

log = logging.getLogger(__name__)

SPOKEN_END = "。！？，.!?, "
"""Punctuation speech recognition appends to what was said."""

MORE_WORDS = frozenset({"更多", "more", "next", "下一条", "还有吗"})
"""Texts that ask for the next passage of the last question."""


Handler = Callable[[Inbound, "Services"], Reply]


class Registry:
    """Message kind / event name -> handler, with a default for everything else."""

    def __init__(self, default: Handler) -> None:
        self._messages: dict[str, Handler] = {}
        self._events: dict[str, Handler] = {}
        self._default = default

    def message(self, *kinds: str) -> Callable[[Handler], Handler]:
        """Register a handler for message kinds (``text``, ``image``...)."""

        def register(handler: Handler) -> Handler:
            for kind in kinds:
                self._messages[kind] = handler
            return handler

        return register

    def event(self, *names: str) -> Callable[[Handler], Handler]:
        """Register a handler for events, by name (case-insensitive)."""

        def register(handler: Handler) -> Handler:
            for name in names:
                self._events[name.lower()] = handler
            return handler

        return register

    def handler_for(self, message: Inbound) -> Handler:
        """The handler that answers ``message``."""
        if message.kind == "event":
            return self._events.get(message.event, self._default)
        return self._messages.get(message.kind, self._default)

    def dispatch(self, message: Inbound, services: Services) -> Reply:
        """Answer ``message`` and fit the answer to a reply."""
        reply = self.handler_for(message)(message, services)
        if isinstance(reply, Text):
            reply = fit(message.openid, reply, services)
        return reply


def activity(message: Inbound) -> list[Command]:
    """The writes recording the sender's activity (last seen, windows) that ``message`` shows.

    A message, a scan or a click (:data:`bot.subscribers.ACTIVITIES`); a follow is recorded by
    its handler, whose event is ``subscribe``.
    """
    kind = message.event if message.kind == "event" else "message"
    if kind in subscribers.ACTIVITIES and kind != "follow" and message.kind in MESSAGE_KINDS:
        return subscribers.activity_commands(message.openid, kind)
    return []


REST_NOTE = "\n……（回复「更多」看后文 / send 'more' for the rest）"


def fit(openid: str, reply: Text, services: Services) -> Text:
    """Cut a text over 2048 bytes at a sentence end; keep the rest for "more"."""
    head, rest = fit_text(reply.content, TEXT_LIMIT_BYTES - len(REST_NOTE.encode("utf-8")))
    if not rest:
        return reply
    key = Keys.session(openid)
    with services.later() as pipe:
        pipe.hset(key, "rest", rest)
        pipe.expire(key, SESSION_TTL)
    return Text(head + REST_NOTE)


def no_reply(message: Inbound, services: Services) -> Reply:
    """Unknown types and receipts: nothing to say (the webhook answers ``success``)."""
    return None


registry = Registry(default=no_reply)


# --- questions ----------------------------------------------------------------------------------


@registry.message("text", "voice")
def question(message: Inbound, services: Services) -> Reply:
    """Chat commands, keyword replies, "more", then the best excerpt from the articles."""
    text = message.content.strip()
    if message.kind == "voice":
        text = text.rstrip(SPOKEN_END)  # speech recognition ends 「帮助。」 with a full stop
    if not text:
        return Text(
            "语音没有识别出文字，请直接打字提问。\nI could not make out that voice message; "
            "please type your question."
        )
    text = services.library.clip(text)  # what is read of a question, stored and matched
    parsed = subscribers.parse_command(text)
    if parsed is not None:
        command = subscribers.answer_command(
            services.redis, message.openid, parsed, services.config
        )
        counted = COMMAND_TALLIES.get(parsed[0])
        if counted:
            with services.later() as batch:
                tally.count(batch, counted)
        if parsed[0] == "forget":
            # their cached answers are found by scanning the keyspace: not within the deadline
            worker.queue(services.redis).enqueue(
                "bot.subscribers.forget_cached_job", message.openid,
                job_id=f"forget-{message.openid}", result_ttl=0,
            )
        return Text(command)
    for rule in services.config.replies.replies:
        if rule.matches(text):
            with services.later() as batch:
                tally.count(batch, "questions", "answered")  # the operator's own answer
            return with_news(message.openid, Text(rule.reply), services)
    if text.casefold() in MORE_WORDS:
        return more(message.openid, services)
    return with_news(message.openid, ask(message.openid, text, services), services)


COMMAND_TALLIES = {"stop": "optouts", "start": "optins", "forget": "forgets"}
"""Chat commands the console counts, and under what name (:data:`bot.tally.NAMES`)."""


def with_news(openid: str, reply: Text, services: Services) -> Text:
    """``reply`` with what is new for the subscriber, when a visit digest has some and it fits
    (:mod:`bot.push.visits`)."""
    room = TEXT_LIMIT_BYTES - len(reply.content.encode("utf-8"))
    return Text(reply.content + visits.offer(services, openid, room))


def ask(openid: str, text: str, services: Services, asked: bool = True) -> Text:
    """Answer ``text`` from the articles, remember it for "more", learn the interest.

    ``asked``: a subscriber's own question (not a menu button's), counted and, when nothing
    answers it, logged for the console.
    """
    library = services.library
    answer = library.answer(text)
    key = Keys.session(openid)
    with services.later() as pipe:
        pipe.delete(key)
        if answer.found:
            pipe.hset(key, mapping={"question": text, "skip": 0})
            pipe.expire(key, SESSION_TTL)
            subscribers.learn(pipe, openid, library.terms(text), library.language_of(text))
        if asked:
            tally.count(pipe, "questions", "answered" if answer.found else "unanswered")
            if not answer.found:
                log_unanswered(pipe, openid, text, "none", services)
    return Text(answer.text)


def log_unanswered(
    pipe: Writes, openid: str, text: str, kind: str, services: Services
) -> None:
    """Log a question the articles could not answer (:mod:`bot.unanswered`) in ``pipe``."""
    library = services.library
    unanswered.record(pipe, openid, text, kind, library.language_of(text), library.terms(text),
                      services.config.console.question_log_days)


def more(openid: str, services: Services) -> Text:
    """The rest of a long answer, or the next passage for the subscriber's last question."""
    key = Keys.session(openid)
    session = services.redis.hgetall(key)
    if session.get("rest"):
        with services.later() as pipe:
            pipe.hdel(key, "rest")
        return Text(session["rest"])
    if not session.get("question"):
        return Text("先问我一个问题，再发「更多」。\nAsk me something first, then send 'more'.")
    skip = int(session.get("skip", 0)) + 1
    answer = services.library.answer(session["question"], skip=skip)
    with services.later() as pipe:
        tally.count(pipe, "more", *(() if answer.found else ("more_empty",)))
        if not answer.found and not session.get("exhausted"):  # logged once, not at every 更多
            log_unanswered(pipe, openid, session["question"], "more", services)
            pipe.hset(key, "exhausted", 1)
    if not answer.found:
        zh = services.library.language_of(session["question"]) == "zh"
        return Text(
            "关于这个问题，没有更多段落了。" if zh else "That is all I have on that question."
        )
    with services.later() as pipe:
        pipe.hset(key, "skip", skip)
        pipe.expire(key, SESSION_TTL)
    return Text(answer.text)


# --- other messages -----------------------------------------------------------------------------

MEDIA_REPLY = (
    "收到了，不过我只读得懂文字。请用文字提问，我从文章里找答案。\n"
    "Thanks! I can only read text: type a question and I will quote our articles."
)


@registry.message("image", "video", "shortvideo", "miniprogrampage")
def media(message: Inbound, services: Services) -> Reply:
    """Media the bot cannot read: say what it can do."""
    return Text(MEDIA_REPLY)


@registry.message("location")
def location(message: Inbound, services: Services) -> Reply:
    """A shared location: the account offers nothing place-based, and keeps no location."""
    label = str(message.fields.get("Label") or "").strip()
    where = f"（{label}）" if label else ""
    return Text(
        f"收到你的位置{where}。本号不提供基于位置的服务，也不会保存它。\n"
        "Got your location; this account offers nothing location-based and does not keep it."
    )


@registry.message("link")
def link(message: Inbound, services: Services) -> Reply:
    """A shared link: the bot does not fetch pages; suggest asking instead."""
    title = str(message.fields.get("Title") or "").strip()
    about = f"《{title}》" if title else "链接"
    return Text(
        f"收到{about}。我不打开链接，但你可以直接问我文章里的问题。\n"
        "I don't open links, but ask me a question and I will quote our articles."
    )


# --- events -------------------------------------------------------------------------------------


@registry.event("subscribe")
def subscribe(message: Inbound, services: Services) -> Reply:
    """A new follower (perhaps from a QR code scene): record the scene, say welcome."""
    scene = (
        message.event_key.removeprefix("qrscene_")
        if message.event_key.startswith("qrscene_")
        else ""
    )
    subscribers.on_follow(services.redis, message.openid, scene=scene)
    with services.later() as batch:
        tally.count(batch, "follows")
    if scene:
        remember_scene(services, message.openid, scene)
    return Text(services.config.account.welcome)


@registry.event("scan")
def scan(message: Inbound, services: Services) -> Reply:
    """A follower scanned a QR code again: record the scene, say nothing."""
    if message.event_key:
        remember_scene(services, message.openid, message.event_key)
    return None


SCENES_KEPT = 20
"""How many QR scenes of one subscriber are kept (the latest): every scan adds one."""

SCENE_MAX_CHARS = 64
"""A scene value is the QR code's scene_str (at most 64 characters on the platform)."""


def remember_scene(services: Services, openid: str, scene: str) -> None:
    """Append ``scene`` to the subscriber's QR scenes, keeping the latest :data:`SCENES_KEPT`."""
    key = Keys.scenes(openid)
    with services.later() as pipe:
        pipe.rpush(key, scene[:SCENE_MAX_CHARS])
        pipe.ltrim(key, -SCENES_KEPT, -1)


@registry.event("unsubscribe")
def unsubscribe(message: Inbound, services: Services) -> Reply:
    """Unfollowed: purge everything the bot keeps about this subscriber, cancel queued sends.

    Nothing to say, even when the purge could not be made to survive a failover (an apology
    would reach nobody): that is logged as an error, for the operator.
    """
    try:
        subscribers.on_unfollow(services.redis, message.openid)
    except NotDurable as exc:
        log.error("unfollow of %s not vouched for by the replicas: %s", message.openid, exc)
    with services.later() as batch:
        tally.count(batch, "unfollows")
    return None


@registry.event("click")
def click(message: Inbound, services: Services) -> Reply:
    """A menu click: run the action configured for its key in config/menu.yaml."""
    button = services.config.menu.click(message.event_key)
    if button is None:
        log.info("click on unknown menu key %r", message.event_key)
        return Text(services.config.account.help)
    if button.action == "text":
        return Text(button.text or "")
    if button.action == "search":
        return ask(message.openid, button.query or "", services, asked=False)
    if button.action == "latest":
        titles = services.library.titles()[:5]
        return Text("最新文章 / Latest articles:\n" + "\n".join(f"· {t}" for t in titles))
    if button.action == "settings":
        return Text(subscribers.settings_text(services.redis, message.openid, services.config))
    return Text(services.config.account.help)


@registry.event("templatesendjobfinish", "masssendjobfinish")
def receipt(message: Inbound, services: Services) -> Reply:
    """Delivery receipts: record them for the operator, a mass send's in its run; say nothing."""
    record = {k: v for k, v in message.fields.items() if isinstance(v, str)}
    key = Keys.events(message.event)
    services.redis.lpush(key, json.dumps(record, ensure_ascii=False))
    services.redis.ltrim(key, 0, EVENT_LOG_LENGTH - 1)
    if message.event == "masssendjobfinish":
        mass_receipt(record, services)
    return None


def mass_receipt(record: dict[str, str], services: Services) -> None:
    """Match a mass send's receipt to the digest run that made the send (by its MsgID)."""
    msg_id = record.get("MsgID", "").strip()
    if not msg_id.isdigit():
        log.info("mass receipt without a usable MsgID: %r", record.get("MsgID"))
        return
    names = ("TotalCount", "FilterCount", "SentCount", "ErrorCount")
    total, filtered, sent, errors = (_count(record.get(name)) for name in names)
    status = record.get("Status", "").strip()
    run = receipts.record_receipt(services.redis, msg_id, status, total, filtered, sent, errors)
    log.info("mass receipt %s: %s (run %s)", msg_id, record.get("Status"), run or "not known yet")


def _count(value: str | None) -> int:
    text = (value or "").strip()
    return int(text) if text.isdigit() else 0
