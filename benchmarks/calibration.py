"""Reliability of the calibrated confidence (hashrec.calibration) on a test split: is "62%" right 62% of the time?

    PYTHONPATH=src .venv/bin/python benchmarks/calibration.py --data ../shared/benchmarks/weibo \\
        --models nb knn acnn --n-train 20000 --set acnn.epochs=2 --out docs/results/calibration

Each model is fitted on the first N training posts (all with no --n-train) and calibrated on the
whole dev split, as `hashrec train` does; saved models can be given with --saved DIR instead. Over
each test post's top k suggestions it reports the expected calibration error (ECE), the Brier score,
the observed frequency of gold hashtags per confidence bin, and what a `min_confidence` threshold
keeps: the share of posts left with a suggestion and the precision of the suggestions kept. Writes
OUT/calibration.json, OUT/calibration.md and OUT/reliability.png (observed frequency against
confidence, one line per model).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from hashrec.calibration import reliability
from hashrec.compare import split_params
from hashrec.config import parse_overrides
from hashrec.data import load_split
from hashrec.models import create
from hashrec.models.base import Recommender

THRESHOLDS = (0.1, 0.2, 0.3, 0.5, 0.7)


def thresholds(gold: list[tuple[str, ...]], suggested: list[list[Any]]) -> list[dict[str, float]]:
    """Per min_confidence: share of posts that keep a suggestion, and precision of the kept suggestions."""
    rows = []
    for t in THRESHOLDS:
        kept = [[s for s in row if s.confidence >= t] for row in suggested]
        n_kept = sum(map(len, kept))
        hits = sum(s.hashtag in g for g, row in zip(gold, kept) for s in row)
        rows.append(
            {
                "min_confidence": t,
                "posts_answered": sum(1 for r in kept if r) / len(kept),
                "precision": hits / n_kept if n_kept else float("nan"),
            }
        )
    return rows


def measure(model: Recommender, test_texts: list[str], gold: list[tuple[str, ...]], k: int) -> dict[str, Any]:
    suggested = model.suggest(test_texts, k)
    top1 = [row[:1] for row in suggested]
    return {
        "model": model.name,
        "n_train": model.trained_on_.get("n_train"),
        "n_calibration": model.calibration_.n_posts,
        f"top{k}": reliability(gold, suggested),
        "top1": reliability(gold, top1),
        "thresholds": thresholds(gold, top1),
    }


def header(first: str, results: list[dict[str, Any]]) -> list[str]:
    """A markdown table's header: `first`, then one column per model."""
    return ["| " + " | ".join([first, *(r["model"] for r in results)]) + " |", "|---" * (1 + len(results)) + "|"]


def write_markdown(results: list[dict[str, Any]], k: int, path: Path) -> None:
    lines = [f"| model | train posts | ECE top-{k} | Brier top-{k} | ECE top-1 | Brier top-1 |", "|---" * 6 + "|"]
    for r in results:
        a, b = r[f"top{k}"], r["top1"]
        lines.append(
            f"| {r['model']} | {r['n_train']:,} | {a['ece']:.4f} | {a['brier']:.4f} | {b['ece']:.4f} | "
            f"{b['brier']:.4f} |"
        )
    lines += [
        "",
        f"Observed frequency of gold hashtags per confidence bin (top-{k} suggestions; n in brackets):",
        "",
        *header("confidence bin", results),
    ]
    bins = sorted({row["bin"] for r in results for row in r[f"top{k}"]["bins"]})
    for b in bins:
        cells = []
        for r in results:
            row = next((x for x in r[f"top{k}"]["bins"] if x["bin"] == b), None)
            cells.append(f"{row['observed']:.3f} (mean conf {row['confidence']:.3f}, n {row['n']:,})" if row else "-")
        lines.append(f"| {b} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Top-1 suggestion under a threshold: share of test posts still answered / precision of the kept:",
        "",
        *header("min_confidence", results),
    ]
    for i, t in enumerate(THRESHOLDS):
        cells = [f"{r['thresholds'][i]['posts_answered']:.1%} / {r['thresholds'][i]['precision']:.3f}" for r in results]
        lines.append(f"| {t} | " + " | ".join(cells) + " |")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def plot(results: list[dict[str, Any]], k: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfect")
    for r in results:
        rel = r[f"top{k}"]
        ax.plot(
            [b["confidence"] for b in rel["bins"]],
            [b["observed"] for b in rel["bins"]],
            marker="o",
            label=f"{r['model']} (ECE {rel['ece']:.3f})",
        )
    ax.set(
        xlabel="calibrated confidence (bin mean)",
        ylabel="observed frequency of gold hashtags",
        title=f"Reliability on test, top-{k} suggestions",
        xlim=(0, 1),
        ylim=(0, 1),
    )
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, required=True, help="split directory (train, dev, test)")
    p.add_argument("--models", nargs="*", default=[], help="model names to fit, e.g. nb knn acnn")
    p.add_argument("--saved", type=Path, nargs="*", default=[], help="saved model directories to measure")
    p.add_argument("--n-train", type=int, help="fit on the first N training posts (default: all)")
    p.add_argument("--set", action="append", default=[], metavar="MODEL.KEY=VALUE")
    p.add_argument("-k", type=int, default=5, help="suggestions per test post")
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args()
    train, dev, test = (load_split(a.data, s) for s in ("train", "dev", "test"))
    train = train[: a.n_train] if a.n_train else train
    gold, texts = [x.hashtags for x in test], [x.text for x in test]
    params = split_params(parse_overrides(a.set), a.models)
    results = []
    for name in a.models:
        start = time.perf_counter()
        model = create(name, **params.get(name, {})).fit(train, dev)
        print(f"{name}: fitted and calibrated in {time.perf_counter() - start:.0f} s", flush=True)
        results.append(measure(model, texts, gold, a.k))
    results += [measure(Recommender.load(d), texts, gold, a.k) for d in a.saved]
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "calibration.json").write_text(json.dumps(results, indent=1), encoding="utf-8")
    write_markdown(results, a.k, a.out / "calibration.md")
    plot(results, a.k, a.out / "reliability.png")
    print((a.out / "calibration.md").read_text(encoding="utf-8"))
    for r in results:
        print(r["model"], "ECE", round(r[f"top{a.k}"]["ece"], 4), "top-1 ECE", round(r["top1"]["ece"], 4))


if __name__ == "__main__":
    main()
