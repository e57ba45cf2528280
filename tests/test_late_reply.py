"""A slow answer misses the deadline, then reaches the subscriber once through the real chain:
webhook -> RQ on a real Redis -> worker -> customer-service API of the simulator's fake WeChat."""

from __future__ import annotations

import dataclasses
import time

import pytest
from rq import SimpleWorker

from bot import services, state, worker
from bot.app import create_app
from bot.inbound import late
from bot.inbound.handlers import registry
from bot.services import Services, build
from bot.simulator.api import create_api
from bot.simulator.server import BackgroundServer
from bot.simulator.wire import build_message
from bot.wechat.message import Inbound, Text, parse
from tests.conftest import WeChat

pytestmark = pytest.mark.redis_server

OPENID = "oLate000000000000000000000"


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


def test_late_answer_is_sent_once_through_the_api(
    settings, config, library, real_redis, redis_server, fake_wechat, worker_env, monkeypatch
) -> None:
    platform, api_url = fake_wechat
    original = registry.dispatch

    def slow(message: Inbound, context: Services):
        if message.content == "slow question":
            time.sleep(0.8)
            return Text("the slow answer")
        return original(message, context)

    monkeypatch.setattr(registry, "dispatch", slow)
    fast = config.webhook.model_copy(update={"deadline_seconds": 0.2})
    app = create_app(build(
        dataclasses.replace(settings, redis_url=redis_server, api_base=api_url),
        config=dataclasses.replace(config, webhook=fast),
        redis_client=real_redis,
        library=library,
    ))
    wechat = WeChat(app.test_client(), app.extensions["bot.services"].settings)
    platform.record(OPENID, "follow")  # WeChat knows the subscriber follows and just wrote
    platform.record(OPENID, "message")
    xml = build_message("text", OPENID, Content="slow question")
    assert wechat.reply(xml, OPENID).kind == "none"  # success within the deadline
    assert wechat.reply(xml, OPENID).kind == "none"  # WeChat's retry: not processed again

    queue = worker.queue(real_redis)
    assert queue.count == 1
    horse = SimpleWorker([queue], connection=queue.connection, serializer=queue.serializer)
    horse.work(burst=True)
    sent = platform.log.since(0, OPENID)
    assert [d["content"] for d in sent] == ["the slow answer"]

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
