"""A slow answer misses the deadline, then reaches the subscriber once, by the account's path.

A verified account: through the real chain, webhook -> RQ on a real Redis -> worker ->
customer-service API of the simulator's fake WeChat. An unverified one (no customer-service API):
given to a re-delivery of the same message, else with the reply to the subscriber's next
message; never through the API, never twice.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from rq import SimpleWorker

from bot import services, state, worker
from bot.app import create_app
from bot.config import Config, load_config
from bot.inbound import delivery, late
from bot.inbound.handlers import REST_NOTE, registry
from bot.services import Services, build
from bot.settings import ROOT
from bot.simulator.api import create_api
from bot.simulator.server import BackgroundServer
from bot.simulator.wire import build_message
from bot.state import Keys
from bot.wechat.message import TEXT_LIMIT_BYTES, Inbound, Text, parse
from tests.conftest import WeChat

pytestmark = pytest.mark.redis_server

OPENID = "oLate000000000000000000000"

QUESTION = "微信公众平台的价值观是什么"
"""The subscriber's next question: answered from the articles, in time."""

SLOW = {
    "slow question": "the slow answer",
    "公众号的价值观是什么？": "慢慢想好的答案。",
}
"""Questions the slow handler answers only once released, and their answers."""


@pytest.fixture
def fake_wechat(settings, tmp_path):
    api = create_api(settings, log_path=tmp_path / "deliveries.jsonl")
    with BackgroundServer(api) as server:
        yield api.extensions["sim.platform"], server.url


@pytest.fixture
def worker_env(monkeypatch, redis_server, fake_wechat, settings, config, library):
    """The worker's settings and context: the same Redis, the fake API, the session's library."""
    worker_settings = dataclasses.replace(settings, redis_url=redis_server, api_base=fake_wechat[1])
    bundle = Services(worker_settings, config, state.connect(redis_server), library=library)
    monkeypatch.setattr(services, "current", lambda: bundle)


@pytest.fixture
def account(tmp_path) -> Callable[..., Config]:
    """``account(verified=..., deadline=...)``: the project's config/ copied, with
    ``verified`` set in account.yaml, loaded as the bot loads it. The deadline leaves a fast
    answer room on a loaded machine (0.5 s was missed once in a full ``make test``)."""

    def make(verified: bool, deadline: float = 1.5) -> Config:
        folder = tmp_path / f"config-{verified}"
        if not folder.exists():
            shutil.copytree(ROOT / "config", folder)
            path = folder / "account.yaml"
            text = re.sub(r"(?m)^verified:.*\n?", "", path.read_text(encoding="utf-8"))
            path.write_text(f"{text.rstrip()}\nverified: {str(verified).lower()}\n", "utf-8")
        config = load_config(folder)
        assert config.account.verified is verified
        webhook = config.webhook.model_copy(update={"deadline_seconds": deadline})
        return dataclasses.replace(config, webhook=webhook)

    return make


@pytest.fixture
def webhook(settings, library, real_redis, redis_server, fake_wechat) -> Callable[[Config], WeChat]:
    """WeChat posting to an app with ``config`` on the real Redis, its API the fake one."""
    for question in (QUESTION, "微信"):
        library.answer(question)  # ranked once: the questions asked below come in time

    def make(config: Config) -> WeChat:
        app = create_app(build(
            dataclasses.replace(settings, redis_url=redis_server, api_base=fake_wechat[1]),
            config=config,
            redis_client=real_redis,
            library=library,
        ))
        return WeChat(app.test_client(), app.extensions["bot.services"].settings)

    return make


@pytest.fixture
def release(monkeypatch) -> Iterator[threading.Event]:
    """Questions of :data:`SLOW` are answered once this event is set (at the end at the latest)."""
    ready = threading.Event()
    original = registry.dispatch

    def dispatch(message: Inbound, context: Services):
        if message.content in SLOW:
            ready.wait(10)
            return Text(SLOW[message.content])
        return original(message, context)

    monkeypatch.setattr(registry, "dispatch", dispatch)
    monkeypatch.setattr(delivery, "OUTLAST_SECONDS", 0.7)  # WeChat's 5 s, shortened
    yield ready
    ready.set()


def kept_in_time(r, openid: str = OPENID) -> bool:
    """Wait for an answer to be kept for ``openid``; whether one was."""
    deadline = time.monotonic() + 5
    while not r.exists(Keys.kept(openid)) and time.monotonic() < deadline:
        time.sleep(0.02)
    return bool(r.exists(Keys.kept(openid)))


def no_late_path_taken(real_redis, fake_wechat) -> None:
    """No RQ job was enqueued and nothing went through the (fake) API."""
    assert worker.queue(real_redis).count == 0
    assert fake_wechat[0].log.since(0, OPENID) == []
    assert not real_redis.keys("bot:late*")


def test_late_answer_is_sent_once_through_the_api(
    settings, account, library, real_redis, redis_server, fake_wechat, worker_env, monkeypatch
) -> None:
    platform, api_url = fake_wechat
    original = registry.dispatch

    def slow(message: Inbound, context: Services):
        if message.content == "slow question":
            time.sleep(0.8)
            return Text("the slow answer")
        return original(message, context)

    monkeypatch.setattr(registry, "dispatch", slow)
    app = create_app(build(
        dataclasses.replace(settings, redis_url=redis_server, api_base=api_url),
        config=account(verified=True, deadline=0.2),
        redis_client=real_redis,
        library=library,
    ))
    wechat = WeChat(app.test_client(), app.extensions["bot.services"].settings)
    platform.record(OPENID, "follow")  # WeChat knows the subscriber follows and just wrote
    platform.record(OPENID, "message")
    xml = build_message("text", OPENID, Content="slow question")
    started = time.monotonic()
    assert wechat.reply(xml, OPENID).kind == "none"  # success within the deadline
    assert time.monotonic() - started < 0.6  # not held open: the API delivers it
    assert wechat.reply(xml, OPENID).kind == "none"  # WeChat's retry: not processed again

    queue = worker.queue(real_redis)
    assert queue.count == 1
    horse = SimpleWorker([queue], connection=queue.connection, serializer=queue.serializer)
    horse.work(burst=True)
    sent = platform.log.since(0, OPENID)
    assert [d["content"] for d in sent] == ["the slow answer"]
    assert not real_redis.exists(Keys.kept(OPENID))

    # the same job again (an RQ retry after a crash) sends nothing more
    job = queue.enqueue("bot.inbound.late.deliver_late", late.message_fields(parse(xml)))
    horse.work(burst=True)
    assert job.return_value() == "already sent"
    assert len(platform.log.since(0, OPENID)) == 1
    assert (
        state.connect(redis_server).get(
            f"bot:late-sent:{OPENID}:m{xml.split('<MsgId>')[1].split('<')[0]}"
        )
        == "sent"
    )


def test_without_the_api_a_retry_after_the_answer_gets_it_once(
    account, webhook, release, real_redis, fake_wechat, library
) -> None:
    wechat = webhook(account(verified=False))
    xml = build_message("text", OPENID, Content="slow question")
    started = time.monotonic()
    assert wechat.reply(xml, OPENID).kind == "none"
    assert time.monotonic() - started >= 0.7  # held open until WeChat gave up: it re-delivers
    release.set()
    assert kept_in_time(real_redis)
    assert wechat.reply(xml, OPENID).text == "the slow answer"  # the second delivery
    assert not real_redis.exists(Keys.kept(OPENID))
    assert wechat.reply(xml, OPENID).text == "the slow answer"  # a third: the same reply

    nxt = wechat.ask(QUESTION, OPENID)
    assert nxt.text.startswith(library.answer(QUESTION).text[:20])  # and nothing before it
    assert "the slow answer" not in nxt.text
    no_late_path_taken(real_redis, fake_wechat)


def test_without_the_api_a_retry_waiting_for_the_answer_gets_it(
    account, webhook, release, real_redis, fake_wechat, library
) -> None:
    wechat = webhook(account(verified=False))
    xml = build_message("text", OPENID, Content="slow question")
    assert wechat.reply(xml, OPENID).kind == "none"
    with ThreadPoolExecutor(1) as pool:
        retry = pool.submit(wechat.reply, xml, OPENID)
        time.sleep(0.1)
        release.set()
        assert retry.result().text == "the slow answer"
    assert not real_redis.exists(Keys.kept(OPENID))
    assert wechat.ask(QUESTION, OPENID).text.startswith(library.answer(QUESTION).text[:20])
    no_late_path_taken(real_redis, fake_wechat)


@pytest.mark.parametrize(
    ("question", "retries", "intro"),
    [
        (
            "公众号的价值观是什么？",
            2,
            "你刚才问的「公众号的价值观是什么？」：\n慢慢想好的答案。\n\n",
        ),
        ("slow question", 3, "About your earlier question “slow question”:\nthe slow answer\n\n"),
    ],
    ids=["zh, 3 deliveries", "en, 4 deliveries"],
)
def test_without_the_api_an_answer_after_the_last_retry_comes_with_the_next_message(
    account, webhook, release, real_redis, fake_wechat, library, question, retries, intro
) -> None:
    wechat = webhook(account(verified=False))
    xml = build_message("text", OPENID, Content=question)
    for _ in range(1 + retries):
        assert wechat.reply(xml, OPENID).kind == "none"  # each waits its budget: not ready
    release.set()
    assert kept_in_time(real_redis)
    assert real_redis.ttl(Keys.kept(OPENID)) > 6 * 86400

    # a reply that is not a text cannot carry it: it waits for the next text
    view = build_message("event", OPENID, Event="VIEW", EventKey="https://example.com/")
    assert wechat.reply(view, OPENID).kind == "none"
    assert real_redis.exists(Keys.kept(OPENID))

    nxt = wechat.ask(QUESTION, OPENID)
    assert nxt.text.startswith(intro)
    new_answer = library.answer(QUESTION).text
    assert nxt.text[len(intro):].startswith(new_answer[:20])
    assert not real_redis.exists(Keys.kept(OPENID))

    third = wechat.ask("微信", OPENID)
    assert third.text.startswith(library.answer("微信").text[:20])  # given once
    assert SLOW[question] not in third.text
    assert wechat.reply(xml, OPENID).kind == "none"  # a late re-delivery: given already
    no_late_path_taken(real_redis, fake_wechat)


def test_a_kept_answer_and_the_new_one_fit_one_reply_with_the_rest_for_more(
    account, webhook, release, real_redis, library, monkeypatch
) -> None:
    long_answer = "这是一个很长的答案里的一句话。" * 40  # 1800 bytes
    monkeypatch.setitem(SLOW, "很长的问题", long_answer)
    wechat = webhook(account(verified=False))
    xml = build_message("text", OPENID, Content="很长的问题")
    assert wechat.reply(xml, OPENID).kind == "none"
    release.set()
    assert kept_in_time(real_redis)
    nxt = wechat.ask(QUESTION, OPENID)
    assert len(nxt.text.encode("utf-8")) <= TEXT_LIMIT_BYTES
    assert nxt.text.startswith("你刚才问的「很长的问题」：\n这是") and nxt.text.endswith(REST_NOTE)
    rest = wechat.ask("更多", OPENID).text
    both = "".join((nxt.text.removesuffix(REST_NOTE) + rest).split())
    assert "".join(long_answer.split()) in both
    assert "".join(library.answer(QUESTION).text.split())[:40] in both


@pytest.mark.parametrize("purge", ["unfollow", "忘记我"])
def test_unfollow_and_forget_me_delete_a_kept_answer(
    account, webhook, release, real_redis, library, purge
) -> None:
    wechat = webhook(account(verified=False))
    xml = build_message("text", OPENID, Content="slow question")
    assert wechat.reply(xml, OPENID).kind == "none"
    release.set()
    assert kept_in_time(real_redis)
    if purge == "unfollow":
        assert wechat.event("unsubscribe", OPENID).kind == "none"
    else:
        assert "the slow answer" not in wechat.ask("忘记我", OPENID).text
    assert not real_redis.exists(Keys.kept(OPENID))
    assert wechat.ask("微信", OPENID).text.startswith(library.answer("微信").text[:20])
