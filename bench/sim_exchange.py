"""What the simulator costs, and how fast it replays a month.

1. One exchange through the protocol driver (build, sign/encrypt, post, read and validate the
   reply) in each mode, against the real webhook served on a local port, next to the baseline
   measured in the same run: a bare ``requests.post`` of plaintext bodies signed beforehand.
   The message is 「帮助」, answered without a search, so the webhook's own work stays small
   and the difference is the simulator's cost.
2. A month of traffic on virtual time: subscribers ask twice a day for 30 days and the account
   answers each question with a customer-service push through the fake API; the webhook, the
   driver and the fake API share one clock, so CreateTime, replay checks and the 48 h windows
   follow it. Prints the wall time and the virtual/real speed-up.

    .venv/bin/python bench/sim_exchange.py [--rounds 200] [--users 5]
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

import fakeredis
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot import clock  # noqa: E402
from bot.app import create_app  # noqa: E402
from bot.search import Library  # noqa: E402
from bot.services import build  # noqa: E402
from bot.settings import Settings  # noqa: E402
from bot.simulator.actions import parse_action  # noqa: E402
from bot.simulator.api import create_api  # noqa: E402
from bot.simulator.driver import Driver, openid_for  # noqa: E402
from bot.simulator.platform import ApiError  # noqa: E402
from bot.simulator.server import BackgroundServer  # noqa: E402
from bot.simulator.wire import build_message, signed_request  # noqa: E402

QUESTION = "微信公众平台的价值观是什么"
CHEAP = "帮助"
WARM_UP = 20


def millis(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[int(len(ordered) * 0.95) - 1]
    return f"median {statistics.median(ordered) * 1000:6.1f} ms  p95 {p95 * 1000:6.1f} ms"


def exchange_costs(webhook: str, settings: Settings, rounds: int) -> None:
    print(f"1. one exchange, {rounds} rounds each after {WARM_UP} to warm up, message {CHEAP!r}")
    bodies = [signed_request(build_message("text", openid_for("bench"), Content=CHEAP),
                             "plain", settings.token) for _ in range(WARM_UP + rounds)]
    http = requests.Session()
    samples = []
    for signed in bodies:  # distinct MsgIds, so no answer comes from the retry cache
        started = time.perf_counter()
        http.post(webhook, params=signed.query, data=signed.body, timeout=5).raise_for_status()
        samples.append(time.perf_counter() - started)
    print(f"   baseline: bare POST, bodies pre-signed {millis(samples[WARM_UP:])}")
    for mode in ("plain", "compat", "safe"):
        driver = Driver(webhook, dataclasses.replace(settings, mode=mode))
        samples = []
        for _ in range(WARM_UP + rounds):
            started = time.perf_counter()
            exchange = driver.act("bench", parse_action(CHEAP))
            samples.append(time.perf_counter() - started)
            assert not exchange.problem, exchange.problem
        print(f"   driver, {mode:6} mode                  {millis(samples[WARM_UP:])}")


def month_replay(webhook: str, api: BackgroundServer, settings: Settings, users: int) -> None:
    virtual = clock.VirtualClock(start=time.time(), speed=0)
    clock.install(virtual)
    platform = api.app.extensions["sim.platform"]
    driver = Driver(webhook, settings, report=lambda openid, kind, name, at:
                    platform.record(openid, kind, name))
    names = [f"user{n}" for n in range(users)]
    for name in names:
        driver.act(name, parse_action("/subscribe"))
    started, exchanges, refused = time.perf_counter(), 0, 0
    for _day in range(30):
        for _half in range(2):
            virtual.advance(12 * 3600)
            for name in names:
                driver.act(name, parse_action(QUESTION))
                exchanges += 1
                body = {"touser": openid_for(name), "msgtype": "text",
                        "text": {"content": "今日摘要"}}
                platform.send_custom(body)
    # two days of silence close every 48 h window
    virtual.advance(49 * 3600)
    for name in names:
        try:
            platform.send_custom({"touser": openid_for(name), "msgtype": "text",
                                  "text": {"content": "too late"}})
        except ApiError:
            refused += 1
    wall = time.perf_counter() - started
    virtual_seconds = 30 * 24 * 3600 + 49 * 3600
    print(f"2. a month on virtual time: {users} subscribers, {exchanges} exchanges, "
          f"{len(platform.log.since(0))} pushes delivered, {refused}/{users} refused after "
          f"49 h of silence")
    print(f"   wall time {wall:.1f} s for {virtual_seconds / 86400:.0f} virtual days "
          f"(x{virtual_seconds / wall:,.0f})")
    clock.reset()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--users", type=int, default=5)
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    with tempfile.TemporaryDirectory() as folder:
        settings = Settings(data_dir=Path(folder) / "var")
        library = Library.open(ROOT / "content", ROOT / "config", Path(folder) / "index")
        app = create_app(build(settings, redis_client=fakeredis.FakeRedis(decode_responses=True),
                               library=library))
        with BackgroundServer(app) as web:
            webhook = web.url + "/wechat"
            with BackgroundServer(create_api(settings, webhook_url=webhook)) as api:
                exchange_costs(webhook, settings, args.rounds)
                month_replay(webhook, api, settings, args.users)


if __name__ == "__main__":
    main()
