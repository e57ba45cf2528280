"""Throttle decisions per second: chunked Lua decisions vs one RQ job per subscriber.

Against a real Redis server (the embedded one, started in a temporary folder), N synthetic
subscribers (in the 48 h window, a few interests, a third in another time zone) get one digest:

- **chunked** (the bot): ``runs.plan`` splits them into chunk jobs of 500 on an RQ queue, ``W``
  worker processes run ``runs.process_chunk`` (a few Lua calls per chunk: read, decide, settle);
- **baseline** (naive): one RQ job per subscriber that reads the record and logs and checks the
  same rules in Python, then writes its decision; measured on a sample of the same population.

In both, the workers are already waiting (as in production) when the jobs start to be enqueued,
and the time runs from the first enqueue until the last job is done.

The WeChat call is a no-op in both. Prints both rates, the ratio, Redis memory per subscriber,
and the wall time of planning plus throttling all N (the 1M target: ``--subscribers 1000000``).

``--tag`` measures the tag channel instead (a verified subscription account's daily broadcast,
:mod:`bot.push.tags`), against the simulator's platform in-process (its tags API, limits and
quotas; calls counted): day 1 tags everyone who may receive it and broadcasts; then 1% of the
subscribers change (half say stop, a quarter unfollow, a quarter follow), the scheduler's sync
untags who said stop, and day 2 broadcasts. It prints the tagging calls (``batchtagging`` and
``batchuntagging``, 50 openids each, against the platform's daily quota) day 2 spent, against
re-tagging everyone who got day 2's broadcast (what keeping no tag state would cost each day).

``--durability`` measures the chunked run on replicated Redis (a primary, two replicas, three
sentinels) four ways: as built, without ``WAIT`` for the replicas, without the in-flight claim
before the API calls (:mod:`bot.push.inflight`), and without either: what each costs.

    .venv/bin/python bench/push_fanout.py [--subscribers 100000] [--baseline 3000] [--workers 4]
    .venv/bin/python bench/push_fanout.py --tag [--subscribers 1000000] [--changing 0.01]
    .venv/bin/python bench/push_fanout.py --durability [--subscribers 30000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing
import random
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rq import Queue, SimpleWorker, Worker  # noqa: E402
from rq.serializers import JSONSerializer  # noqa: E402

from bot import clock, state  # noqa: E402
from bot.push import inflight, runs, throttle  # noqa: E402
from bot.push.selection import Catalog  # noqa: E402
from bot.services import Services, build  # noqa: E402
from bot.settings import Settings  # noqa: E402
from bot.state import Keys  # noqa: E402
from bot.state.replicated import Topology  # noqa: E402

TERMS = ["微信", "产品", "设计", "search", "用户", "价值观", "社交", "内容", "平台", "增长"]
ZONES = ["Asia/Shanghai", "Asia/Shanghai", "Asia/Tokyo", "Europe/Berlin", "America/New_York"]
QUEUE = "bench-push"


class NoApi:
    """The WeChat API replaced by a no-op (both sides of the benchmark use it)."""

    def send_text(self, openid: str, content: str) -> None:
        """Pretend to send."""

    def mass_send(self, openids: list[str], content: str, clientmsgid: str) -> int:
        """Pretend to send."""
        return 1


_SETUP: Services | None = None


def setup() -> Services:
    """This process's services, with the no-op API (built after the fork)."""
    global _SETUP
    if _SETUP is None:
        settings = Settings(redis_url=URL, config_dir=FOLDER / "config",
                            content_dir=FOLDER / "content", data_dir=FOLDER / "var")
        _SETUP = build(settings, api=NoApi())
    return _SETUP


DONE = "bench:push:done"
"""Jobs finished, counted by the jobs themselves (the end of a run is when all are)."""


def chunk_job(run: str, openids: list[str]) -> int:
    """The bot's chunk job, with the no-op API."""
    decided = sum(runs.process_chunk(setup(), run, openids).values())
    setup().redis.incr(DONE)
    return decided


def naive_job(run: str, openid: str) -> str:
    """One subscriber, rules checked in Python with separate reads and writes (not atomic)."""
    s = setup()
    r = s.redis
    limits = s.config.push.limits
    now = clock.now()
    user = r.hgetall(Keys.user(openid))
    ledger = Keys.push_ledger(run)
    if r.hexists(ledger, openid):
        return "already"
    if user.get("subscribed") != "1":
        reason = "skipped-unsubscribed"
    elif user.get("digests") == "off":
        reason = "skipped-optout"
    elif now - float(user.get("last_seen", 0)) > limits.inactive_days * 86400:
        reason = "skipped-inactive"
    else:
        interests = dict(r.zrange(Keys.push_interests(openid), 0, -1, withscores=True))
        since = float(user.get("since", now)) - 7 * 86400
        picked = runs.catalog(s).pick(interests, since, now, 3)
        local = dt.datetime.fromtimestamp(now, ZoneInfo(user.get("tz") or "Asia/Shanghai"))
        if not picked:
            reason = "skipped-irrelevant"
        elif local.hour >= limits.quiet_start or local.hour < limits.quiet_end:
            reason = "deferred-quiet"
        elif now - float(user.get("last_msg", 0)) > 47 * 3600:
            reason = "skipped-window"
        elif r.zcount(f"bench:log:{openid}", now - 86400, "+inf") >= limits.per_day:
            reason = "skipped-cap"
        elif r.zcount(f"bench:log:{openid}", now - 7 * 86400, "+inf") >= limits.per_week:
            reason = "skipped-cap"
        elif r.zcount(Keys.push_account(), now - 86400, "+inf") >= limits.account_daily:
            reason = "skipped-account-cap"
        else:
            r.zadd(f"bench:log:{openid}", {run: now})
            r.zadd(Keys.push_account(), {f"{run}|{openid}": now})
            s.api.send_text(openid, "digest")
            reason = "sent"
    r.hset(ledger, openid, f"{reason}|{now}")
    r.incr(DONE)
    return reason


def populate(r, prefix: str, count: int, now: float) -> None:
    """``count`` subscribers who followed a month ago and asked something within 48 h."""
    rng = random.Random(7)
    pipe = r.pipeline(transaction=False)
    for n in range(count):
        openid = f"{prefix}{n:07d}"
        pipe.hset(Keys.user(openid), mapping={
            "subscribed": "1", "digests": "on", "since": now - 30 * 86400,
            "last_seen": now - rng.randint(0, 40) * 3600,
            "last_msg": now - rng.randint(0, 40) * 3600,
            "lang": "zh", "tz": rng.choice(ZONES),
        })
        pipe.zadd(Keys.push_members(), {openid: now - 30 * 86400})
        pipe.zadd(Keys.push_interests(openid), {t: 1 for t in rng.sample(TERMS, 3)})
        if n % 5000 == 4999:
            pipe.execute()
    pipe.execute()


def write_content(folder: Path, now: float) -> None:
    """Twenty articles from the last week, on the benchmark's terms."""
    (folder / "content").mkdir(parents=True)
    (folder / "config").mkdir()
    (folder / "config" / "account.yaml").write_text("type: service\nverified: true\n")
    (folder / "config" / "push.yaml").write_text(
        "limits:\n  account_daily: 10000000\n"
        "digests:\n  - name: daily\n    schedule: '0 9 * * *'\n    channel: custom\n"
    )
    for n in range(20):
        day = dt.date.fromtimestamp(now - (n % 7) * 86400).isoformat()
        terms = " ".join(TERMS[n % len(TERMS)] for _ in range(3))
        (folder / "content" / f"a{n}.md").write_text(
            f"---\ntitle: 文章 {n}\ndate: {day}\n---\n{terms}。第 {n} 篇。\n", encoding="utf-8"
        )


def work(queue_name: str) -> None:
    """A worker process, as in production: waiting for jobs before any is enqueued."""
    global _SETUP
    _SETUP = None  # never share the parent's connections across the fork
    runs.catalog(setup())  # what a real worker preloads before its first job
    r = state.bytes_client(state.connect(URL))
    queue = Queue(queue_name, connection=r, serializer=JSONSerializer)
    SimpleWorker([queue], connection=r, serializer=JSONSerializer).work(
        logging_level="WARNING"
    )


def timed(queue: Queue, workers: int, enqueue: Callable[[], int]) -> dict[str, float]:
    """Time ``enqueue`` (which returns how many jobs) and until all those jobs are done.

    The workers start first and wait, as they do in production, so they take the first chunks
    while the rest are still being planned. Returns the seconds until everything was enqueued
    and until everything was done, and the CPU seconds of the planner (this process), the
    workers and the Redis server meanwhile.
    """
    procs = [multiprocessing.Process(target=work, args=(QUEUE,)) for _ in range(workers)]
    for p in procs:
        p.start()
    while len(Worker.all(queue=queue)) < workers:
        time.sleep(0.05)
    r = queue.connection
    r.set(DONE, 0)
    children, planner, server = _child_cpu(), time.process_time(), redis_cpu(r)
    started = time.perf_counter()
    jobs = enqueue()
    enqueued = time.perf_counter() - started
    planner = time.process_time() - planner
    while int(r.get(DONE) or 0) < jobs:
        time.sleep(0.01)
    finished = time.perf_counter() - started
    server = redis_cpu(r) - server
    for p in procs:
        p.terminate()
    for p in procs:
        p.join(timeout=10)
        if p.is_alive():  # a worker stuck in its teardown does not hold up the figures
            p.kill()
            p.join()
    return {"enqueued": enqueued, "finished": finished, "planner_cpu": planner,
            "workers_cpu": _child_cpu() - children, "redis_cpu": server}


def _child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def redis_cpu(r) -> float:
    """CPU seconds the Redis server has used so far."""
    info = r.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def settle_persistence(r) -> None:
    """Wait until no snapshot or AOF rewrite is running or scheduled on the server."""
    while True:
        info = r.info("persistence")
        busy = ("rdb_bgsave_in_progress", "aof_rewrite_in_progress", "aof_rewrite_scheduled")
        if not any(int(info.get(k, 0)) for k in busy):
            return
        time.sleep(0.5)


def used_memory(r) -> int:
    return int(r.info("memory")["used_memory"])


class PlatformApi:
    """The API calls of the tag channel, answered by the simulator's platform in this process
    (no HTTP: a million subscribers' calls would time the web server, not the bot)."""

    def __init__(self, platform) -> None:  # noqa: ANN001 - bot.simulator.platform.Platform
        self.platform = platform

    def _count(self, path: str) -> None:
        self.platform.count_call(path)

    def tags(self) -> dict[str, int]:
        self._count("/cgi-bin/tags/get")
        return {t["name"]: t["id"] for t in self.platform.get_tags()["tags"]}

    def create_tag(self, name: str) -> int:
        self._count("/cgi-bin/tags/create")
        return int(self.platform.create_tag({"tag": {"name": name}})["tag"]["id"])

    def tagged(self, tag: int) -> list[str]:
        found: list[str] = []
        after = ""
        while True:
            self._count("/cgi-bin/user/tag/get")
            page = self.platform.tag_page({"tagid": tag, "next_openid": after})
            found.extend(page["data"]["openid"])
            after = page["next_openid"]
            if not page["data"]["openid"] or not after:
                return found

    def tag_members(self, tag: int, openids: list[str], add: bool = True) -> None:
        self._count("/cgi-bin/tags/members/" + ("batchtagging" if add else "batchuntagging"))
        self.platform.tag_members({"openid_list": openids, "tagid": tag}, add)

    def mass_send_tag(self, tag: int, content: str, clientmsgid: str) -> int:
        self._count("/cgi-bin/message/mass/sendall")
        body = {"filter": {"is_to_all": False, "tag_id": tag}, "msgtype": "text",
                "text": {"content": content}, "clientmsgid": clientmsgid}
        return int(self.platform.send_mass(body, "all")["msg_id"])


class CountingLog:
    """The platform's delivery log, counting lines instead of keeping them."""

    def __init__(self) -> None:
        self.lines = 0

    def write(self, *args: object, **extra: object) -> None:
        self.lines += 1


def fresh(folder: Path, now: float, name: str) -> None:
    """An article of the day on every term: everyone has something relevant each day."""
    (folder / "content" / f"0-{name}.md").write_text(  # first among the day's articles
        f"---\ntitle: 今日 {name}\ndate: {dt.date.fromtimestamp(now).isoformat()}\n---\n"
        + " ".join(TERMS) + "\n", encoding="utf-8")


TAGGING = ("/cgi-bin/tags/members/batchtagging", "/cgi-bin/tags/members/batchuntagging")


def tag_bench(count: int, changing: float) -> None:
    """The ``--tag`` measurement (see the module docstring)."""
    from bot import subscribers
    from bot.push import tags
    from bot.simulator.platform import Platform

    folder = FOLDER
    r = state.connect(URL)
    today = dt.datetime.now(ZoneInfo("Asia/Shanghai")).replace(hour=9, minute=5, second=0)
    now = today.timestamp()
    virtual = clock.VirtualClock(start=now, speed=1.0)
    clock.install(virtual)
    r.set(Keys.clock_offset(), repr(now - time.time()))
    write_content(folder, now)
    fresh(folder, now, "day1")
    (folder / "config" / "account.yaml").write_text("type: subscription\nverified: true\n")
    (folder / "config" / "push.yaml").write_text(
        "limits:\n  account_daily: 10000000\n"
        "digests:\n  - name: daily\n    schedule: '0 9 * * *'\n    channel: tag\n")
    log = CountingLog()
    platform = Platform("wxbench", "secret", log, account_type="subscription", verified=True)
    t0 = time.perf_counter()
    populate(r, "o", count, now)
    for n in range(count):
        platform.record(f"o{n:07d}", "follow", at=now - 30 * 86400)
    print(f"subscribers: {count} (populated in {time.perf_counter() - t0:.1f} s)")
    settings = Settings(redis_url=URL, config_dir=folder / "config",
                        content_dir=folder / "content", data_dir=folder / "var")
    s = build(settings, api=PlatformApi(platform))

    def day(label: str) -> None:
        run = runs.run_id("daily", runs.last_slot(s.config.push.digest("daily"),
                                                  "Asia/Shanghai", clock.now()))
        before, sent_before = dict(platform.calls), log.lines
        started = time.perf_counter()
        while True:
            try:
                counts = tags.broadcast(s, run)
                break
            except tags.NotYet as wait:  # the job would be enqueued again then: jump there
                print(f"  {label}: {wait}")
                virtual.advance(wait.seconds)
                r.set(Keys.clock_offset(), repr(clock.now() - time.time()))
        took = time.perf_counter() - started
        spent = {p: platform.calls.get(p, 0) - before.get(p, 0) for p in platform.calls}
        print(f"{label}: broadcast in {took:.1f} s, reached {log.lines - sent_before}; "
              + ", ".join(f"{k} {v}" for k, v in counts.most_common()))
        print("  calls: " + ", ".join(f"{p.removeprefix('/cgi-bin/')} {n}"
                                      for p, n in sorted(spent.items()) if n))

    day("day 1")
    day1 = sum(platform.calls.get(p, 0) for p in TAGGING)

    virtual.advance(86400 + 120)  # the next slot, over 24 h after day 1's sends
    r.set(Keys.clock_offset(), repr(clock.now() - time.time()))
    fresh(folder, clock.now(), "day2")
    rng = random.Random(11)
    changed = rng.sample(range(count), int(count * changing * 0.75))
    stops, leaves = changed[: len(changed) * 2 // 3], changed[len(changed) * 2 // 3:]
    for n in stops:
        subscribers.answer_command(r, f"o{n:07d}", ("stop", "zh", ""), s.config)
    for n in leaves:
        platform.record(f"o{n:07d}", "unfollow")
        subscribers.on_unfollow(r, f"o{n:07d}")
    newcomers = int(count * changing * 0.25)
    populate(r, "n", newcomers, clock.now())
    for n in range(newcomers):
        platform.record(f"n{n:07d}", "follow")
    before = sum(platform.calls.get(p, 0) for p in TAGGING)
    untagged = ticks = 0
    while r.exists(Keys.push_tag_changes()):  # the scheduler's ticks through the day
        untagged += tags.sync(s)
        ticks += 1
    synced = sum(platform.calls.get(p, 0) for p in TAGGING) - before
    print(f"changes: {len(stops)} said stop, {len(leaves)} unfollowed, {newcomers} followed; "
          f"{ticks} ticks' sync untagged {untagged} in {synced} calls")
    sent_before = log.lines
    day("day 2")
    day2 = sum(platform.calls.get(p, 0) for p in TAGGING) - before
    reached = log.lines - sent_before
    full = -(-reached // 50)
    print(f"tagging calls for day 2 with {changing:.0%} changing: {day2} (sync + broadcast), "
          f"against {full} to re-tag everyone it reached ({reached} / 50): "
          f"{full / max(day2, 1):.0f}x fewer; day 1 (everyone new) took {day1}")


def enqueue_chunks(s: Services, run: str, queue: Queue) -> int:
    """Plan ``run`` into chunk jobs of the bot's own :func:`chunk_job` on ``queue``; how many."""
    return runs.plan(s, run, lambda i, openids: queue.enqueue(
        "__main__.chunk_job", run, openids, job_id=f"chunk-{i}", result_ttl=0))


class _Without:
    """One durability measure taken out of this process and the workers it forks (they inherit
    the patch): the cost of each is the rate with it against the rate without."""

    def __init__(self, wait: bool, claim: bool) -> None:
        self.wait, self.claim = wait, claim
        self.saved: list[tuple[object, str, object]] = []

    def _patch(self, owner: object, name: str, value: object) -> None:
        self.saved.append((owner, name, getattr(owner, name)))
        setattr(owner, name, value)

    def __enter__(self) -> None:
        if self.wait:  # no WAIT for the replicas, on reservations and on claims
            self._patch(state, "durable", lambda client, since: None)
            self._patch(throttle, "durable", lambda client, since: None)
        if self.claim:  # no claim before the calls: every reserved send goes
            self._patch(inflight, "claim", lambda r, openids, run, ended=(): ["go"] * len(openids))
            self._patch(inflight, "release", lambda r, openids: None)

    def __exit__(self, *exc: object) -> None:
        for owner, name, value in reversed(self.saved):
            setattr(owner, name, value)


def durability_bench(count: int, workers: int) -> None:
    """The digest's decisions per second on replicated Redis (a primary, two replicas, three
    sentinels: :class:`bot.state.replicated.Topology`), with and without each durability measure:
    ``WAIT`` for the replicas (on fresh reservations, and on each claimed group of sends) and the
    in-flight claim before the API calls. Each variant on a fresh population of ``count``."""
    global URL, _SETUP
    today = dt.datetime.now(ZoneInfo("Asia/Shanghai")).replace(hour=10, minute=0)
    now = today.timestamp()
    write_content(FOLDER, now)
    Catalog.load(FOLDER / "content", FOLDER / "config", "Asia/Shanghai")  # warm jieba
    variants = [("as built (WAIT + claim)", False, False), ("without WAIT", True, False),
                ("without the claim", False, True), ("without either", True, True)]
    rates: dict[str, list[float]] = {}
    with Topology(FOLDER / "redis", replicas=2) as topology:
        URL = topology.url
        r = state.connect(URL)
        queue = Queue(QUEUE, connection=state.bytes_client(r), serializer=JSONSerializer)
        print(f"subscribers: {count} per variant, workers: {workers}, replicated Redis: "
              "a primary, 2 replicas, 3 sentinels (redis+sentinel://)")
        for rounds in range(3):  # three times each, interleaved: the median
            for label, no_wait, no_claim in variants:
                r.flushall()
                r.set(Keys.clock_offset(), repr(now - time.time()))
                clock.install(clock.VirtualClock(start=now, speed=1.0))
                populate(r, "o", count, now)
                r.wait(2, 10_000)
                run = runs.run_id("daily", now - 3600)
                with _Without(no_wait, no_claim):
                    _SETUP = None
                    s = setup()
                    took = timed(queue, workers,
                                 lambda s=s, run=run: enqueue_chunks(s, run, queue))["finished"]
                decided = r.hlen(Keys.push_ledger(run))
                rate = decided / took
                rates.setdefault(label, []).append(rate)
                print(f"  round {rounds + 1}, {label}: {decided} decisions in {took:.1f} s"
                      f" -> {rate:,.0f}/s")
    medians = {label: statistics.median(values) for label, values in rates.items()}
    base = medians["without either"]
    print("median of three; the cost of each measure, against the rate without either:")
    for label, rate in medians.items():
        print(f"  {label}: {rate:,.0f} decisions/s ({rate / base:.2f}x)")


def main() -> None:
    global URL, FOLDER
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--baseline", type=int, default=3000, help="naive jobs measured")
    parser.add_argument("--workers", type=int, default=4, help="RQ worker processes (2 per core:"
                        " each waits on Redis about half the time)")
    parser.add_argument("--tag", action="store_true", help="measure the tag channel instead")
    parser.add_argument("--durability", action="store_true",
                        help="measure on replicated Redis, with and without each durability "
                        "measure (WAIT, the in-flight claim)")
    parser.add_argument("--changing", type=float, default=0.01,
                        help="--tag: share of subscribers changing between the two days")
    args = parser.parse_args()

    FOLDER = Path(tempfile.mkdtemp(prefix="pfb-"))
    if args.durability:
        try:
            durability_bench(args.subscribers, args.workers)
        finally:
            shutil.rmtree(FOLDER, ignore_errors=True)
        return
    URL, _ = state.ensure_embedded(FOLDER / "var")
    r = state.connect(URL)
    if args.tag:
        try:
            tag_bench(args.subscribers, args.changing)
        finally:
            r.flushall(asynchronous=True)
            state.stop_embedded(FOLDER / "var")
            shutil.rmtree(FOLDER, ignore_errors=True)
        return
    rq_r = state.bytes_client(r)
    queue = Queue(QUEUE, connection=rq_r, serializer=JSONSerializer)
    try:
        # 10:00 in Shanghai today: most subscribers are outside quiet hours
        today = dt.datetime.now(ZoneInfo("Asia/Shanghai")).replace(hour=10, minute=0)
        now = today.timestamp()
        r.set(Keys.clock_offset(), repr(now - time.time()))
        clock.install(clock.VirtualClock(start=now, speed=1.0))
        write_content(FOLDER, now)
        Catalog.load(FOLDER / "content", FOLDER / "config", "Asia/Shanghai")  # warm jieba

        empty = used_memory(r)
        t0 = time.perf_counter()
        populate(r, "o", args.subscribers, now)
        populated = time.perf_counter() - t0
        settle_persistence(r)  # the population's snapshot or AOF rewrite is not the run's cost
        after_population = used_memory(r)

        run = runs.run_id("daily", now - 3600)
        s = setup()
        chunks = 0

        def plan() -> int:
            nonlocal chunks
            chunks = enqueue_chunks(s, run, queue)
            return chunks

        forks = int(r.info("stats")["total_forks"])
        fast = timed(queue, args.workers, plan)
        forks = int(r.info("stats")["total_forks"]) - forks
        planned, total = fast["enqueued"], fast["finished"]
        decided = r.hlen(Keys.push_ledger(run))
        reasons = Counter(v.split("|")[0] for v in r.hvals(Keys.push_ledger(run)))
        after_run = used_memory(r)
        fast_rate = decided / total

        populate(r, "b", args.baseline, now)
        base_run = runs.run_id("daily", now - 3599)

        def enqueue_each() -> int:
            for n in range(args.baseline):
                queue.enqueue("__main__.naive_job", base_run, f"b{n:07d}", result_ttl=0)
            return args.baseline

        naive_seconds = timed(queue, args.workers, enqueue_each)["finished"]
        naive_decided = r.hlen(Keys.push_ledger(base_run))
        naive_rate = naive_decided / naive_seconds

        n = args.subscribers
        print(f"subscribers: {n} (populated in {populated:.1f} s), workers: {args.workers}")
        print(f"chunked Lua: {decided} decisions, {chunks} chunk jobs, all planned after"
              f" {planned:.1f} s, all decided after {total:.1f} s -> {fast_rate:,.0f} decisions/s")
        print("  decisions: " + ", ".join(f"{k} {v}" for k, v in reasons.most_common()))
        print(f"  CPU per subscriber: Redis {fast['redis_cpu'] / decided * 1e6:.0f} us, workers"
              f" {fast['workers_cpu'] / decided * 1e6:.0f} us, planner"
              f" {fast['planner_cpu'] / decided * 1e6:.0f} us (2 cores: at best"
              f" {(fast['redis_cpu'] + fast['workers_cpu'] + fast['planner_cpu']) / 2:.1f} s);"
              f" {forks} background save(s) of the server (AOF rewrite, snapshot) meanwhile")
        print(f"naive (1 RQ job per subscriber, rules in Python): {naive_decided} decisions in "
              f"{naive_seconds:.1f} s -> {naive_rate:,.0f} decisions/s")
        print(f"ratio: {fast_rate / naive_rate:.1f}x (target >= 30x)")
        print(f"plan + throttle of all {n}: {total:.1f} s "
              f"(1M target: 120 s; extrapolated {1e6 / fast_rate:.0f} s)")
        print(f"Redis memory per subscriber: {(after_population - empty) / n:.0f} B stored, "
              f"+{(after_run - after_population) / n:.0f} B for one digest (ledger, logs)")
    finally:
        try:
            r.flushall(asynchronous=True)  # nothing to keep: saving a million takes long
        finally:
            state.stop_embedded(FOLDER / "var")
            shutil.rmtree(FOLDER, ignore_errors=True)


URL = ""
FOLDER = Path()

if __name__ == "__main__":
    multiprocessing.set_start_method("fork")
    main()
