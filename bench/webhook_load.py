"""Load benchmark: our webhook answering text questions vs a WeRoBot echo bot, under gunicorn.

Both servers run under the same gunicorn settings on this machine; wrk (Debian's package,
installed here if missing and possible) sends signed text messages with a fresh MsgId each, the
questions drawn from a list of real ones, and the two are measured alternately in one run. Ours
does real work for every request: signature, parse, dedup in Redis, subscriber activity, keyword
rules, search over content/, render. Prints requests/s and p50/p99 latency of each and the ratio.

    .venv/bin/python bench/webhook_load.py [--seconds 10] [--rounds 3] [--connections 4] [--dense]
                                           [--worker-class procfile|gthread|CLASS]
                                           [--before CHECKOUT] [--unanswerable]

``--unanswerable`` mixes in questions nothing answers (a quarter of the traffic), which the bot
counts and logs for the operator console.

``--dense`` keeps the embedding retrieval on (config/search.yaml's default); without it the
benchmark measures the lexical path, which is what a webhook under load serves.

``--worker-class`` serves ours with another gunicorn worker class (``procfile``: the one of
``bot/runner.py``, what ``python -m bot web`` runs, ``bot.serving.BufferingWorker``); every other
setting stays. Ours is then also measured under plain gthread in the same alternating rounds, as
``ours-gthread``, and the ratio of the two is printed (target: within 10%). The WeRoBot server
stays on gthread.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot import state  # noqa: E402
from bot.runner import gunicorn_command  # noqa: E402
from bot.settings import DEV_TOKEN  # noqa: E402

QUESTIONS = [
    "微信公众平台的价值观是什么",
    "微信为什么不希望用户花太多时间",
    "什么是去中心化",
    "微博电商和微信电商有什么不同",
    "自媒体怎么赚钱",
    "朋友圈",
    "用完即走是什么意思",
    "what does decentralization mean",
    "how do WeChat self-media make money",
    "why did WeChat 5.0 matter",
    "微信 公众号 价值",
    "official account values",
]

UNANSWERABLE = [
    "你们卖不卖火锅底料",
    "外星人什么时候来地球",
    "明天北京会下雨吗",
    "how do I reset my router",
]
"""Questions our articles cannot answer (``--unanswerable`` mixes them in): each is counted and
logged for the operator console, the most writes a question costs."""

GUNICORN = [
    "--workers",
    "2",
    "--worker-class",
    "gthread",
    "--threads",
    "4",
    "--timeout",
    "30",
    "--preload",
    "--log-level",
    "warning",
]
"""The same settings for both servers."""


def procfile_worker_class() -> str:
    """The worker class of the product's one gunicorn command line (``bot/runner.py``)."""
    command = gunicorn_command(port=0)
    return command[command.index("--worker-class") + 1]


def with_worker_class(worker_class: str) -> list[str]:
    """:data:`GUNICORN` with another ``--worker-class``."""
    settings = list(GUNICORN)
    settings[settings.index("--worker-class") + 1] = worker_class
    return settings


LUA = r"""
local bit = require("bit")
local band, bor, bxor, bnot = bit.band, bit.bor, bit.bxor, bit.bnot
local lshift, rshift, rol, tobit = bit.lshift, bit.rshift, bit.rol, bit.tobit

-- SHA-1 (FIPS 180-4), lowercase hex: every request gets a signed URL of its own
local function sha1(msg)
  local h0, h1, h2, h3, h4 = 0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0
  local bits = #msg * 8
  msg = msg .. "\128" .. string.rep("\0", (55 - #msg) %% 64) .. string.char(0, 0, 0, 0,
    band(rshift(bits, 24), 255), band(rshift(bits, 16), 255), band(rshift(bits, 8), 255),
    band(bits, 255))
  local w = {}
  for start = 1, #msg, 64 do
    for i = 0, 15 do
      local a, b, c, d = msg:byte(start + i * 4, start + i * 4 + 3)
      w[i] = bor(lshift(a, 24), lshift(b, 16), lshift(c, 8), d)
    end
    for i = 16, 79 do w[i] = rol(bxor(w[i - 3], w[i - 8], w[i - 14], w[i - 16]), 1) end
    local a, b, c, d, e = h0, h1, h2, h3, h4
    for i = 0, 79 do
      local f, k
      if i < 20 then f, k = bor(band(b, c), band(bnot(b), d)), 0x5A827999
      elseif i < 40 then f, k = bxor(b, c, d), 0x6ED9EBA1
      elseif i < 60 then f, k = bor(band(b, c), band(b, d), band(c, d)), 0x8F1BBCDC
      else f, k = bxor(b, c, d), 0xCA62C1D6 end
      local t = tobit(rol(a, 5) + f + e + k + w[i])
      e, d, c, b, a = d, c, rol(b, 30), a, t
    end
    h0, h1, h2 = tobit(h0 + a), tobit(h1 + b), tobit(h2 + c)
    h3, h4 = tobit(h3 + d), tobit(h4 + e)
  end
  return bit.tohex(h0) .. bit.tohex(h1) .. bit.tohex(h2) .. bit.tohex(h3) .. bit.tohex(h4)
end

local questions = {%(questions)s}
local counter = 0
request = function()
  counter = counter + 1
  local q = questions[(counter %% #questions) + 1]
  local nonce = string.format("%%d%%09d", %(run)d, counter)
  local parts = {"%(token)s", "%(ts)s", nonce}
  table.sort(parts)
  local path = "%(path)s?signature=" .. sha1(table.concat(parts))
    .. "&timestamp=%(ts)s&nonce=" .. nonce
  local body = "<xml><ToUserName><![CDATA[gh_bench]]></ToUserName>"
    .. "<FromUserName><![CDATA[oBench" .. string.format("%%022d", counter %% 500)
    .. "]]></FromUserName>"
    .. "<CreateTime>%(ts)s</CreateTime><MsgType><![CDATA[text]]></MsgType>"
    .. "<Content><![CDATA[" .. q .. "]]></Content>"
    .. "<MsgId>" .. string.format("%%d%%09d", %(run)d, counter) .. "</MsgId></xml>"
  return wrk.format("POST", path, {["Content-Type"] = "text/xml"}, body)
end
"""
"""Signed text questions with fresh MsgIds, each under a URL signed for it (its own nonce): the
webhook refuses a signed URL that comes again with another body."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "wrk"],
            env=env,
            check=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        found = shutil.which("wrk")
    if not found:
        sys.exit("wrk is needed: apt-get install wrk")
    return found


def copy_config(source: Path, target: Path, dense: bool) -> None:
    """``source`` copied to ``target``, with dense retrieval off unless ``dense``."""
    shutil.copytree(source, target)
    if not dense:
        search = target / "search.yaml"
        search.write_text(
            re.sub(r"(dense:\s*\n\s*enabled:)\s*\w+", r"\1 false", search.read_text())
        )


def start(
    app: str, port: int, env: dict[str, str], worker_class: str = "gthread", cwd: Path = ROOT
) -> subprocess.Popen:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            app,
            "--bind",
            f"127.0.0.1:{port}",
            *with_worker_class(worker_class),
        ],
        cwd=cwd,
        env=env,
        start_new_session=True,
    )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return process
        except OSError:
            time.sleep(0.2)
    process.kill()
    sys.exit(f"{app} did not start")


def stop(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(timeout=20)


def run_wrk(
    wrk: str, url: str, seconds: int, connections: int, run: int, questions: list[str]
) -> dict[str, float]:
    ts = str(int(time.time()))
    path = "/wechat" if "/wechat" in url else "/"
    script = Path(tempfile.mkstemp(suffix=".lua")[1])
    script.write_text(
        LUA
        % {
            "questions": ", ".join(f'"{q}"' for q in questions),
            "ts": ts,
            "run": run,
            "path": path,
            "token": DEV_TOKEN,
        }
    )
    base = url.split("/wechat")[0]
    out = subprocess.run(
        [wrk, "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), base],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    script.unlink()
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        sys.exit(f"{url} answered {errors.group(1)} requests with errors:\n{out}")
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50": _ms(re.search(r"50%\s+([\d.]+\w+)", out).group(1)),
        "p99": _ms(re.search(r"99%\s+([\d.]+\w+)", out).group(1)),
    }


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(\w+)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--dense", action="store_true", help="keep embedding retrieval on")
    parser.add_argument(
        "--worker-class",
        default="gthread",
        help="gunicorn worker class of ours (procfile: bot/runner.py's); "
        "other than gthread, ours under gthread is measured too",
    )
    parser.add_argument(
        "--before",
        type=Path,
        metavar="CHECKOUT",
        help="also serve the bot of another checkout (e.g. `git worktree add /tmp/before "
        "HEAD~3`) with its own config/, under gthread, as ours-before: a change's "
        "before/after in one run",
    )
    parser.add_argument(
        "--unanswerable",
        action="store_true",
        help="mix in questions nothing answers (a quarter of the traffic): they are logged for "
        "the operator console, the costliest path of a question",
    )
    args = parser.parse_args()
    questions = QUESTIONS + (UNANSWERABLE if args.unanswerable else [])
    if args.before and not (args.before / "bot" / "app.py").is_file():
        parser.error(f"--before {args.before}: not a checkout of the bot (no bot/app.py there); "
                     "make one with `git worktree add /tmp/before <commit>`")
    worker_class = args.worker_class
    if worker_class == "procfile":
        worker_class = procfile_worker_class()
    compare = worker_class != "gthread"
    wrk = ensure_wrk()
    work = Path(tempfile.mkdtemp(prefix="webhook-load-"))
    config = work / "config"
    copy_config(ROOT / "config", config, args.dense)
    url_redis, _ = state.ensure_embedded(work / "var")
    env = {
        **os.environ,
        "REDIS_URL": url_redis,
        "BOT_DATA_DIR": str(work / "var"),
        "BOT_CONFIG_DIR": str(config),
        "WECHAT_TOKEN": DEV_TOKEN,
    }
    env.pop("WECHAT_MODE", None)
    ours_port, theirs_port, plain_port = free_port(), free_port(), free_port()
    ours = start("bot.app:create_app()", ours_port, env, worker_class)
    theirs = start("bench.werobot_echo:app", theirs_port, env)
    plain = start("bot.app:create_app()", plain_port, env) if compare else None
    urls = {
        "ours": f"http://127.0.0.1:{ours_port}/wechat",
        "werobot": f"http://127.0.0.1:{theirs_port}/",
    }
    if compare:
        urls["ours-gthread"] = f"http://127.0.0.1:{plain_port}/wechat"
    before = None
    if args.before:
        before_dir = args.before.resolve()
        copy_config(before_dir / "config", work / "config-before", args.dense)
        before_env = {**env, "BOT_CONFIG_DIR": str(work / "config-before"),
                      "PYTHONPATH": str(before_dir)}
        before_port = free_port()
        before = start("bot.app:create_app()", before_port, before_env, cwd=before_dir)
        urls["ours-before"] = f"http://127.0.0.1:{before_port}/wechat"
    results: dict[str, list[dict[str, float]]] = {name: [] for name in urls}
    try:
        # warm-up: first requests load lazily built parts in each worker
        for url in urls.values():
            run_wrk(wrk, url, 2, args.connections, 0, questions)
        for round_ in range(1, args.rounds + 1):
            for offset, (name, url) in enumerate(urls.items()):
                # distinct MsgIds per server and round: each server sees fresh messages
                run = round_ + offset * (args.rounds + 1)
                results[name].append(
                    run_wrk(wrk, url, args.seconds, args.connections, run, questions))
    finally:
        stop(ours)
        stop(theirs)
        if plain is not None:
            stop(plain)
        if before is not None:
            stop(before)
        state.stop_embedded(work / "var")
        shutil.rmtree(work, ignore_errors=True)
    mode = "lexical + dense" if args.dense else "lexical"
    print(
        f"webhook load: {args.rounds} alternating rounds of {args.seconds} s, "
        f"{args.connections} connections, gunicorn {' '.join(GUNICORN[:6])}; search: {mode}"
    )
    if compare:
        print(f"ours: --worker-class {worker_class}; ours-gthread and werobot: gthread")
    width = max(10, *(len(name) for name in results))
    print(f"{'':{width}} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8}")
    summary = {}
    for name, rows in results.items():
        summary[name] = {k: statistics.median(r[k] for r in rows) for k in ("rps", "p50", "p99")}
        s = summary[name]
        print(f"{name:{width}} {s['rps']:10.0f} {s['p50']:8.2f} {s['p99']:8.2f}")
    ratio = summary["ours"]["rps"] / summary["werobot"]["rps"]
    print(f"ratio ours/werobot (req/s): {ratio:.2f}  (target >= 1.0; ours p99 target < 50 ms)")
    if compare:
        ratio = summary["ours"]["rps"] / summary["ours-gthread"]["rps"]
        print(f"ours under {worker_class} vs under gthread (req/s): {ratio:.2f}  (target >= 0.90)")
    if before is not None:
        ratio = summary["ours"]["rps"] / summary["ours-before"]["rps"]
        print(f"ours vs ours-before ({args.before}, gthread) (req/s): {ratio:.2f}")


if __name__ == "__main__":
    main()
