"""A synthetic month of subscribers, replayed in virtual time through the real bot.

``python -m bot sim scenario --subscribers N --days D --seed S [--chaos] [--json] [--account-type
subscription|service] [--verified true|false] [--channel ...]`` builds a
folder (``--out``) with its own embedded Redis, config and content (the account's articles plus
one dated article a day), then runs, in one virtual time
(:class:`~bot.simulator.clock.SharedClock`):

- the fake WeChat API (``bot.simulator.api``) and the webhook (``bot.app``, on services built by
  :func:`bot.services.build`), each on a local port;
- RQ worker processes on queues ``default`` and ``push`` (:func:`work`: the settings the lead's
  worker should use), restarted when they die; ``--chaos`` SIGKILLs a worker or its work horse
  every few seconds;
- the scheduler's :func:`~bot.push.scheduler.tick` at every step of :data:`STEP` virtual seconds;
- subscribers who follow (some from QR scenes), tell their time zone, ask questions, go silent,
  opt out and in, change quiet hours, unsubscribe: every action goes through the simulator's
  driver to the webhook, signed as WeChat does, and is written to ``timeline.jsonl``.

At the end it waits for the queues, reconciles every run, and checks the fake API's delivery log
against the timeline (:mod:`bot.simulator.respect`): most digests to one subscriber in any 24 h and
7
days, sends in quiet hours, to the opted-out, unsubscribed or 90-day silent, outside the 48 h
window, duplicates, undecided subscribers, and coverage.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import random
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

import click

from bot.settings import ROOT, Settings

STEP = 15 * 60
"""Virtual seconds between two scheduler ticks."""

ZONES = (
    ("Asia/Shanghai", 0.55),
    ("Europe/London", 0.15),
    ("America/New_York", 0.15),
    ("Asia/Tokyo", 0.1),
    ("Australia/Sydney", 0.05),
)
"""Where the synthetic subscribers live, and how many of them."""

QUESTIONS = {
    "zh": [
        "微信的价值观是什么",
        "什么是用完即走",
        "公众平台怎么做内容",
        "微博和微信电商有什么不同",
        "去中心化的生态是什么意思",
        "自媒体怎么生存",
        "微信为什么不做推送",
        "产品经理怎么想用户",
    ],
    "en": [
        "what are wechat values",
        "what does use and leave mean",
        "how do official accounts work",
        "weibo vs wechat ecommerce",
        "what is a decentralized ecosystem",
        "self media life",
    ],
}
TOPICS = [
    ("微信的价值观：用户价值第一", ["微信", "价值观"], "zh"),
    ("用完即走：好工具的样子", ["用完即走", "产品"], "zh"),
    ("公众平台的内容与原创", ["公众平台", "原创"], "zh"),
    ("去中心化的微信生态", ["去中心化", "生态"], "zh"),
    ("自媒体的生活方式", ["自媒体"], "zh"),
    ("WeChat values in practice", ["wechat", "values"], "en"),
    ("E-commerce on Weibo and WeChat", ["ecommerce", "weibo"], "en"),
]


@dataclass(frozen=True)
class Account:
    """The kind of account a scenario plays, and its digest's channel."""

    type: str = "subscription"
    verified: bool = True
    channel: str = "tag"


@dataclass
class Person:
    """One synthetic subscriber and their plans."""

    name: str
    openid: str
    zone: str
    lang: str
    follow_at: float
    ask_gap: float
    silent_from: float
    scene: str = ""
    plans: list[tuple[float, str, str]] = field(default_factory=list)
    """``(time, action, argument)``: optout, optin, unsubscribe, quiet, refollow."""


def _people(count: int, start: float, days: int, rng: random.Random) -> list[Person]:
    from bot.simulator.driver import openid_for

    people = []
    end = start + days * 86400
    for n in range(count):
        name = f"s{n:05d}"
        zone = rng.choices([z for z, _ in ZONES], [w for _, w in ZONES])[0]
        lang = "zh" if zone == "Asia/Shanghai" or rng.random() < 0.3 else "en"
        old = rng.random() < 0.1  # followed months ago, silent since: no digests for them
        follow_at = start - 100 * 86400 if old else start + rng.random() * days * 0.4 * 86400
        person = Person(
            name=name,
            openid=openid_for(name),
            zone=zone,
            lang=lang,
            follow_at=follow_at,
            ask_gap=rng.uniform(1.0, 6.0) * 86400,
            silent_from=start + rng.uniform(0.3, 1.5) * days * 86400,
        )
        if old:  # most stay silent; some come back during the month
            person.silent_from = start - 99 * 86400
            if rng.random() < 0.3:
                person.follow_at = start - 100 * 86400
                person.plans.append((start + rng.random() * days * 86400, "return", ""))
        if rng.random() < 0.3:
            person.scene = f"poster{n % 4}"
        when = max(follow_at, start) + rng.random() * days * 86400
        roll = rng.random()
        if roll < 0.12:
            person.plans.append((when, "optout", ""))
            if rng.random() < 0.5:
                person.plans.append((when + rng.uniform(1, 6) * 86400, "optin", ""))
        elif roll < 0.2:
            person.plans.append((when, "unsubscribe", ""))
            if rng.random() < 0.3:
                person.plans.append((when + rng.uniform(1, 4) * 86400, "refollow", ""))
        if rng.random() < 0.1:
            person.plans.append((max(follow_at, start) + 3600, "quiet", "23-9"))
        person.plans = [p for p in person.plans if p[0] < end]
        people.append(person)
    return people


def default_channel(account_type: str, verified: bool) -> str:
    """The digest channel a scenario of this kind uses unless told: the one each kind is for."""
    if not verified:
        return "visit"
    return "tag" if account_type == "subscription" else "custom"


def _write_world(
    out: Path, start: float, days: int, rng: random.Random, account: Account
) -> tuple[Path, Path]:
    """Config and content folders for the scenario, for the kind of account ``account`` says."""
    import shutil

    config_dir, content_dir = out / "config", out / "content"
    shutil.rmtree(config_dir, ignore_errors=True)
    shutil.rmtree(content_dir, ignore_errors=True)
    shutil.copytree(ROOT / "config", config_dir)
    shutil.copytree(ROOT / "content", content_dir)
    (config_dir / "account.yaml").write_text(
        f"type: {account.type}\nverified: {str(account.verified).lower()}\n"
        "timezone: Asia/Shanghai\n",
        encoding="utf-8",
    )
    (config_dir / "push.yaml").write_text(
        "limits:\n  per_day: 1\n  per_week: 3\n  quiet_start: 22\n  quiet_end: 8\n"
        "digests:\n  - name: daily\n    schedule: '0 9 * * *'\n"
        f"    channel: {account.channel}\n    items: 3\n",
        encoding="utf-8",
    )
    search = config_dir / "search.yaml"
    if search.exists():  # BM25 only: the month is about pushes, and dense search costs CPU
        search.write_text(
            search.read_text(encoding="utf-8").replace("enabled: true", "enabled: false"),
            encoding="utf-8",
        )
    bodies = [
        p.read_text(encoding="utf-8").split("---", 2)[-1].strip()[:600]
        for p in sorted((ROOT / "content").glob("*.md"))
    ]
    zone = ZoneInfo("Asia/Shanghai")
    for day in range(days + 1):
        title, tags, lang = TOPICS[day % len(TOPICS)]
        date = dt.datetime.fromtimestamp(start + day * 86400, zone).date().isoformat()
        (content_dir / f"daily-{day:03d}.md").write_text(
            f"---\ntitle: {title}（{day + 1}）\nlanguage: {lang}\ntags: {json.dumps(tags)}\n"
            f"date: {date}\n---\n{rng.choice(bodies)}\n",
            encoding="utf-8",
        )
    return config_dir, content_dir


# --- workers ------------------------------------------------------------------------------------


def work() -> None:
    """One worker process of the scenario: the bot's own worker, logging only warnings.

    It ends itself when the scenario's process is gone (killed, say, by a test's timeout): left
    running, it would take the jobs of the next scenario in the same folder, against an API that
    no longer answers.
    """
    from bot.worker import run_worker

    parent = os.getppid()

    def orphaned() -> None:
        while os.getppid() == parent:
            time.sleep(1)
        os.killpg(os.getpgid(0), signal.SIGKILL)  # the worker and its work horse

    threading.Thread(target=orphaned, daemon=True).start()
    run_worker(logging_level="WARNING")


class Workers:
    """Worker processes kept alive; ``chaos`` kills one (or its work horse) now and then."""

    def __init__(self, count: int, env: dict[str, str], log: Path, rng: random.Random) -> None:
        self.count, self.env, self.log, self.rng = count, env, log, rng
        log.unlink(missing_ok=True)
        self.procs: list[subprocess.Popen] = []
        self.kills = 0
        self._stop = threading.Event()

    def start(self) -> None:
        """Start the workers."""
        self.procs = [self._spawn() for _ in range(self.count)]

    def _spawn(self) -> subprocess.Popen:
        with self.log.open("ab") as out:
            return subprocess.Popen(
                [sys.executable, "-c", "from bot.simulator.scenario import work; work()"],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def revive(self) -> None:
        """Restart every worker that died."""
        for i, proc in enumerate(self.procs):
            if proc.poll() is not None:
                self.procs[i] = self._spawn()

    def chaos(self, low: float = 3.0, high: float = 12.0) -> None:
        """Until :meth:`stop`: every few seconds SIGKILL a worker or its horse, then revive."""
        while not self._stop.wait(self.rng.uniform(low, high)):
            proc = self.rng.choice(self.procs)
            horses = _children(proc.pid)
            target = self.rng.choice(horses) if horses and self.rng.random() < 0.6 else proc.pid
            try:
                os.kill(target, signal.SIGKILL)
                self.kills += 1
            except ProcessLookupError:
                pass
            time.sleep(self.rng.uniform(0.5, 2.0))
            self.revive()

    def calm(self) -> None:
        """End the chaos."""
        self._stop.set()

    def stop(self) -> None:
        """Stop the chaos thread and the workers (each by its own pid)."""
        self._stop.set()
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


# --- the replay ---------------------------------------------------------------------------------


def _busy(r, queues: list) -> bool:  # noqa: ANN001 - rq queues
    from rq.registry import ScheduledJobRegistry, StartedJobRegistry

    for q in queues:
        if q.count or StartedJobRegistry(queue=q).count or ScheduledJobRegistry(queue=q).count:
            return True
    return False


def _wait_idle(r, queues: list, timeout: float) -> bool:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while _busy(r, queues):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def replay(
    subscribers: int, days: int, seed: int, chaos: bool, out: Path, workers: int = 2,
    account: Account | None = None,
) -> dict:
    """Run the scenario; returns the figures (also written to ``out/figures.json``)."""
    from bot import clock, services, state, worker
    from bot.app import create_app
    from bot.push import runs, scheduler
    from bot.simulator import respect
    from bot.simulator.actions import parse_action
    from bot.simulator.api import create_api
    from bot.simulator.clock import SharedClock
    from bot.simulator.driver import Driver
    from bot.simulator.server import BackgroundServer
    from bot.state import Keys

    rng = random.Random(seed)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    out.mkdir(parents=True, exist_ok=True)
    data_dir = out / "var"
    state.stop_embedded(data_dir)
    for name in ("appendonlydir", "appendonly.aof", "dump.rdb"):
        target = data_dir / name
        if target.is_dir():
            import shutil

            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
    url, _ = state.ensure_embedded(data_dir)
    zone = ZoneInfo("Asia/Shanghai")
    start = dt.datetime(2030, 3, 4, 0, 0, tzinfo=zone).timestamp()
    account = account or Account()
    config_dir, content_dir = _write_world(out, start, days, rng, account)
    people = _people(subscribers, start, days, rng)
    base = Settings(
        redis_url=url, data_dir=data_dir, config_dir=config_dir, content_dir=content_dir
    )
    r = services.build(base).redis
    r.flushdb()
    shared = SharedClock(r, start - 101 * 86400)
    clock.install(shared)

    timeline_path, deliveries_path = out / "timeline.jsonl", out / "deliveries.jsonl"
    timeline_path.unlink(missing_ok=True)
    deliveries_path.unlink(missing_ok=True)
    api_app = create_api(base, log_path=deliveries_path, virtual_clock=shared,
                         account_type=account.type, verified=account.verified)
    api_server = BackgroundServer(api_app).start()
    platform = api_app.extensions["sim.platform"]
    settings = Settings(
        redis_url=url,
        data_dir=data_dir,
        config_dir=config_dir,
        content_dir=content_dir,
        api_base=api_server.url,
    )
    bot = services.build(settings, redis_client=r)
    config = bot.config
    web = BackgroundServer(create_app(bot)).start()
    driver = Driver(
        web.url + "/wechat",
        settings,
        report=lambda openid, kind, name, at: platform.record(openid, kind, name),
        replied=platform.show_reply,
        now=clock.now,
    )

    env = {
        **os.environ,
        "REDIS_URL": url,
        "BOT_DATA_DIR": str(data_dir),
        "BOT_CONFIG_DIR": str(config_dir),
        "BOT_CONTENT_DIR": str(content_dir),
        "WECHAT_API_BASE": api_server.url,
        "PYTHONPATH": str(ROOT),
    }
    pool = Workers(workers, env, out / "workers.log", random.Random(seed + 1))
    pool.start()
    chaos_thread = None
    if chaos:
        chaos_thread = threading.Thread(target=pool.chaos, daemon=True)
        chaos_thread.start()
    queues = [worker.queue(r, name) for name in worker.QUEUES]

    timeline = timeline_path.open("w", encoding="utf-8")
    problems: list[str] = []

    written = threading.Lock()

    def note(when: float, openid: str, event: str, **extra: object) -> None:
        row = {"time": when, "openid": openid, "event": event, **extra}
        with written:  # several subscribers act at once, from the driver's threads
            timeline.write(json.dumps(row, ensure_ascii=False) + "\n")

    following: dict[str, bool] = {}

    def act(person: Person, action: str, argument: str) -> None:
        if action in ("follow", "refollow"):
            following[person.name] = True
        elif not following.get(person.name):
            return  # WeChat carries nothing from someone who does not follow the account
        elif action == "unsubscribe":
            following[person.name] = False
        line = {
            "follow": f"/subscribe {person.scene}".strip(),
            "refollow": "/subscribe",
            "unsubscribe": "/unsubscribe",
            "optout": "退订" if person.lang == "zh" else "stop",
            "optin": "订阅" if person.lang == "zh" else "start",
            "timezone": ("时区 " if person.lang == "zh" else "timezone ") + person.zone,
            "quiet": ("免打扰 " if person.lang == "zh" else "quiet ") + argument,
            "ask": argument,
            "return": QUESTIONS[person.lang][0],
        }[action]
        when = clock.now()  # what the subscriber did, they did before the bot answered
        exchange = driver.act(person.name, parse_action(line))
        if exchange.problem:
            problems.append(f"{person.name} {action}: {exchange.problem}")
        event = {
            "follow": "subscribe",
            "refollow": "subscribe",
            "ask": "message",
            "return": "message",
        }.get(action, action)
        extra = {"zone": person.zone} if action == "timezone" else {}
        if action == "quiet":
            extra = {"quiet": argument}
        note(when, person.openid, event, **extra)

    def run_steps(person: Person, steps: list[tuple[str, str]]) -> None:
        for action, argument in steps:
            act(person, action, argument)

    def follow(person: Person, action: str = "follow") -> list[tuple[str, str]]:
        steps = [(action, "")]
        if person.zone != "Asia/Shanghai":
            steps.append(("timezone", ""))
        return steps

    # the plan of every action, in virtual time
    agenda: list[tuple[float, int, Person, str, str]] = []
    for person in people:
        agenda.append((person.follow_at, 0, person, "follow", ""))
        t = person.follow_at + rng.uniform(60, 3 * 3600)
        end = start + days * 86400
        while t < min(person.silent_from, end):
            if t >= start or t < start - 99 * 86400:
                agenda.append((t, 1, person, "ask", rng.choice(QUESTIONS[person.lang])))
            t += rng.expovariate(1 / person.ask_gap)
        for when, action, argument in person.plans:
            agenda.append((when, 2, person, action, argument))
    agenda.sort(key=lambda item: (item[0], item[1], item[2].name))

    threads = ThreadPoolExecutor(max_workers=6)
    cursor = 0
    end = start + days * 86400
    started_real = time.monotonic()
    try:
        while clock.now() < end + 2 * 3600:
            step_end = clock.now() + STEP
            quiet_past = clock.now() < start - 99 * 86400 and cursor < len(agenda)
            if quiet_past and agenda[cursor][0] > step_end:  # nothing happens for months: jump
                step_end = max(step_end, min(agenda[cursor][0], start))
            batch: dict[str, list[tuple[str, str]]] = {}
            order: list[Person] = []
            while cursor < len(agenda) and agenda[cursor][0] <= step_end:
                _, _, person, action, argument = agenda[cursor]
                cursor += 1
                if person.name not in batch:
                    batch[person.name] = []
                    order.append(person)
                steps = (
                    follow(person, action)
                    if action in ("follow", "refollow")
                    else [(action, argument)]
                )
                batch[person.name].extend(steps)
            shared.advance(step_end - clock.now())

            list(threads.map(run_steps, order, [batch[p.name] for p in order]))
            if clock.now() >= start - 86400:
                if scheduler.tick(r, config):
                    _wait_idle(r, queues, timeout=30)
            if not chaos:
                pool.revive()
        # let deferred sends come due, then close everything
        if chaos_thread:
            pool.calm()
            chaos_thread.join()
        pool.revive()
        for _ in range(8):
            shared.advance(STEP)
            scheduler.tick(r, config)
            _wait_idle(r, queues, timeout=30)
        _wait_idle(r, queues, timeout=240)
        for run in r.zrange(Keys.push_runs(), 0, -1):
            runs.reconcile(bot, run)
        timeline.close()
        figures = respect.check(timeline_path, deliveries_path, r, config, start=start, end=end)
    finally:
        pool.stop()
        threads.shutdown()
        timeline.close()
        web.stop()
        api_server.stop()
        clock.reset()
        state.stop_embedded(data_dir)
    calls, refusals = platform.counts()
    figures.update(
        account=f"{'verified' if account.verified else 'unverified'} {account.type}",
        channel=account.channel,
        refused_48001=refusals.get(48001, 0),
        api_errors=dict(sorted(refusals.items())),
        api_calls=dict(sorted(calls.items())),
        subscribers=subscribers,
        days=days,
        seed=seed,
        chaos=chaos,
        worker_kills=pool.kills,
        webhook_failures=len(problems),
        real_seconds=round(time.monotonic() - started_real, 1),
        timeline=str(timeline_path),
        deliveries=str(deliveries_path),
    )
    (out / "figures.json").write_text(json.dumps(figures, indent=2), encoding="utf-8")
    return figures


@click.command("scenario")
@click.option("--subscribers", default=1000, show_default=True)
@click.option("--days", default=30, show_default=True)
@click.option("--seed", default=1, show_default=True)
@click.option("--chaos", is_flag=True, help="SIGKILL workers (or their horses) at random moments.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@click.option("--workers", default=2, show_default=True, help="RQ worker processes.")
@click.option("--account-type", type=click.Choice(["subscription", "service"]),
              default="subscription", show_default=True, help="The kind of account played.")
@click.option("--verified", type=click.Choice(["true", "false"]), default="true",
              show_default=True, help="Whether WeChat verified it (personal accounts: false).")
@click.option("--channel", type=click.Choice(["visit", "tag", "custom", "mass"]), default=None,
              help="The digest's channel (default: visit unverified, tag for a verified "
                   "subscription account, custom for a verified service account).")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=ROOT / "var" / "scenario",
    show_default=True,
    help="Folder for Redis, config, content and the logs.",
)
def scenario(
    subscribers: int, days: int, seed: int, chaos: bool, as_json: bool, workers: int,
    account_type: str, verified: str, channel: str | None, out: Path,
) -> None:
    """Replay synthetic subscribers for DAYS days through webhook, workers and the fake API."""
    from bot.wechat import privileges

    is_verified = verified == "true"
    channel = channel or default_channel(account_type, is_verified)
    if channel not in privileges.channels_for(account_type, is_verified):
        raise click.BadParameter(
            f"this {privileges.describe(account_type, is_verified)} cannot use channel {channel!r} "
            f"(it can: {', '.join(privileges.channels_for(account_type, is_verified))})",
            param_hint="--channel")
    account = Account(account_type, is_verified, channel)
    figures = replay(subscribers, days, seed, chaos, out.resolve(), workers, account)
    if as_json:
        click.echo(json.dumps(figures, indent=2))
        return
    click.echo(f"timeline:   {figures['timeline']}")
    click.echo(f"deliveries: {figures['deliveries']}")
    for key, value in figures.items():
        if key not in ("timeline", "deliveries"):
            click.echo(f"{key:32} {value}")
