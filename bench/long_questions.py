"""Long questions against the webhook as the Procfile runs it: answer time, CPU after, memory.

Four questions of 20,000 random CJK characters (and one of 60 KB of English) are posted, signed,
to ``python -m bot web`` on loopback. For each configuration it prints each answer's time, the
CPU seconds the web processes (master and workers) use in the 10 s after the last reply, and the
workers' resident memory before and after. The baseline, measured in the same run, is the same
bot with the question limits lifted (``max_question_chars`` and ``same_language_max_chars`` at
5000: what the first version did, which read a question whole).

    .venv/bin/python bench/long_questions.py [--after 10]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot import state  # noqa: E402
from bot.settings import DEV_TOKEN  # noqa: E402
from bot.simulator.wire import build_message, read_reply, signed_request  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def family(pid: int) -> list[int]:
    """``pid`` and its children (gunicorn's master and workers)."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return [pid]
    return [pid, *(int(c) for c in children)]


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / TICK


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def ask(url: str, text: str, openid: str) -> float:
    xml = build_message("text", openid, Content=text)
    signed = signed_request(xml, "plain", DEV_TOKEN)
    started = time.monotonic()
    response = requests.post(url, params=signed.query, data=signed.body, timeout=30)
    elapsed = time.monotonic() - started
    assert response.status_code == 200, response.text[:200]
    assert read_reply(response.content, openid).kind in ("text", "none")
    return elapsed


def measure(name: str, config_dir: Path, questions: list[str], after: float) -> None:
    folder = Path(tempfile.mkdtemp(prefix="long-questions-"))
    port = free_port()
    env = {**os.environ, "BOT_DATA_DIR": str(folder / "var"), "BOT_CONFIG_DIR": str(config_dir),
           "PYTHONPATH": str(ROOT)}
    web = subprocess.Popen(
        [sys.executable, "-m", "bot", "web", "--host", "127.0.0.1", "--port", str(port)],
        env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if requests.get(base + "/healthz", timeout=1).ok:
                    break
            except requests.RequestException:
                time.sleep(0.3)
        for n in range(4):  # warm both workers up with ordinary questions
            ask(base + "/wechat", "微信的价值观", f"oWarm{n:023d}")
        time.sleep(2)
        workers = family(web.pid)[1:]
        before = {pid: rss_mb(pid) for pid in workers}
        times = [ask(base + "/wechat", q, f"oLong{n:023d}") for n, q in enumerate(questions)]
        cpu0 = cpu_seconds(family(web.pid))
        time.sleep(after)
        cpu = cpu_seconds(family(web.pid)) - cpu0
        grown = max(rss_mb(pid) / before[pid] - 1 for pid in workers if pid in before)
        print(f"{name}:")
        print("  answer times (s): " + ", ".join(f"{t:.2f}" for t in times))
        print(f"  web CPU in the {after:g} s after the last reply: {cpu:.2f} s")
        print(f"  worker memory: {', '.join(f'{v:.0f}' for v in before.values())} MB before, "
              f"{', '.join(f'{rss_mb(p):.0f}' for p in workers)} MB after "
              f"(largest growth {grown * 100:+.0f}%)")
    finally:
        os.killpg(web.pid, signal.SIGTERM)
        web.wait(timeout=30)
        state.stop_embedded(folder / "var")
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--after", type=float, default=10.0, help="seconds of CPU watched after")
    parser.add_argument("--chars", type=int, default=20000, help="characters of each question")
    args = parser.parse_args()
    rng = random.Random(7)
    questions = ["".join(chr(rng.randint(0x4E00, 0x9FFF)) for _ in range(args.chars))
                 for _ in range(4)]
    english = ["what " * 12000]
    unclipped = Path(tempfile.mkdtemp(prefix="config-unclipped-"))
    shutil.copytree(ROOT / "config", unclipped, dirs_exist_ok=True)
    search = unclipped / "search.yaml"
    text = search.read_text(encoding="utf-8")
    text = text.replace("max_question_chars: 300", "max_question_chars: 5000")
    text = text.replace("same_language_max_chars: 64", "same_language_max_chars: 5000")
    search.write_text(text, encoding="utf-8")
    try:
        measure("ours (config/ as shipped)", ROOT / "config", questions, args.after)
        measure("ours, one 60 KB English question", ROOT / "config", english, args.after)
        measure("baseline: question limits lifted to 5000", unclipped, questions, args.after)
    finally:
        shutil.rmtree(unclipped, ignore_errors=True)


if __name__ == "__main__":
    main()
