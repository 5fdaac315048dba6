"""The talk's idea measured (PAPER.md §5): boost variants beside their base and the anchors, on a reference split.

Each run fits `boost` on the split's dev posts (never the base's training posts), scores test with
Eq. 11 at k = 1..5 and appends one JSON line to --results; a run already there is skipped, so the
script can be stopped and restarted. `--report` turns the lines into Markdown (mean ± std over
seeds) and `--plot` draws the feature importance of the saved seed-0 model of a variant.

    python benchmarks/boost_runs.py --data ../shared/benchmarks/weibo --base runs/acnn-weibo \
        --scorer runs/nb-weibo --anchor runs/fasttext-weibo --variants rerank classifier dart --seeds 0 1 2
    python benchmarks/boost_runs.py --data ... --base ... --runs rerank:0 classifier:0 rerank:1   # an order
    python benchmarks/boost_runs.py --report
    python benchmarks/boost_runs.py ... --bench weibo-dev25 --dev-share 0.25 --runs pool:0 pool:1   # learning curve
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from hashrec.data import load_split
from hashrec.metrics import evaluate_ranked
from hashrec.models import create
from hashrec.models.base import Recommender
from hashrec.models.boost import (
    FEATURE_GROUPS,
    SCORER_RANKS,
    format_importance,
    importance,
    model_sha256,
    model_top,
    plot_importance,
)
from hashrec.tokens import tokenize_many

RESULTS = Path("runs/boost/results.jsonl")
NO_REP = tuple(g for g in FEATURE_GROUPS if g != "rep")
# variant -> boost params; "rerank" is the default (lambdarank over the base's top 50, gbdt)
VARIANTS: dict[str, dict] = {
    "rerank": {},
    "classifier": {"objective": "binary"},
    "dart": {"boosting": "dart", "n_estimators": 200},
    "no-rep": {"features": NO_REP},
    "no-scorers": {"features": tuple(g for g in FEATURE_GROUPS if g != "scorers")},
    "rep-only": {"features": ("base", "rep")},
    "top20": {"n_candidates": 20},
    "pool": {"from_scorers": 5},  # each scorer's top 5 join the base's candidates
    "pool100": {"n_candidates": 100, "from_scorers": 10},  # a wider pool: 100 candidates, 10 per scorer
    "pool-no-rep": {"from_scorers": 5, "features": NO_REP},  # pool for a base without h (e.g. hknn)
}


def done(results: Path) -> set[tuple]:
    if not results.is_file():
        return set()
    rows = [json.loads(line) for line in results.read_text().splitlines() if line.strip()]
    return {(r["bench"], r["method"], r["seed"]) for r in rows}


def record(results: Path, row: dict) -> None:
    results.parent.mkdir(parents=True, exist_ok=True)
    with open(results, "a", encoding="utf-8") as f:
        f.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(
        f"{row['bench']} {row['method']} seed {row['seed']}: F1@1 {row['f1'][0]:.4f} ({row['seconds']:.0f} s)",
        flush=True,
    )


def scores_row(bench: str, method: str, seed: int, model: Recommender, test: list, t0: float, **extra) -> dict:
    s = model.evaluate(test)
    return {
        "bench": bench,
        "method": method,
        "seed": seed,
        "f1": [s[k].f1 for k in s],
        "p": [s[k].precision for k in s],
        "r": [s[k].recall for k in s],
        "seconds": time.time() - t0,
        **extra,
    }


def dev_part(dev: list, share: float, seed: int) -> list:
    """A random `share` of the dev posts (drawn with seed 100 + `seed`, kept in order); all of them at 1."""
    if share >= 1:
        return dev
    keep = np.random.default_rng(100 + seed).permutation(len(dev))[: int(share * len(dev))]
    return [dev[i] for i in sorted(keep)]


def run(a: argparse.Namespace) -> None:
    bench = a.bench or Path(a.data).name
    train, dev, test = (load_split(a.data, part) for part in ("train", "dev", "test"))
    seen = done(a.results)
    test_docs = tokenize_many([p.text for p in test])
    for path in [a.base, *a.scorer, *a.anchor]:  # the reference lines: each model alone on test
        name = f"alone:{Path(path).name}"
        if (bench, name, 0) not in seen:
            # from the model's cached top list: the same ranking as model.evaluate, and boost reuses it
            t0 = time.time()
            ids, _ = model_top(model := Recommender.load(path), model_sha256(path), test_docs, SCORER_RANKS)
            s = evaluate_ranked([p.hashtags for p in test], [[model.labels_[i] for i in row[:5]] for row in ids])
            record(
                a.results,
                {
                    "bench": bench,
                    "method": name,
                    "seed": 0,
                    "f1": [s[k].f1 for k in s],
                    "p": [s[k].precision for k in s],
                    "r": [s[k].recall for k in s],
                    "seconds": time.time() - t0,
                },
            )
    jobs = [tuple(r.split(":")) for r in a.runs] if a.runs else [(v, s) for v in a.variants for s in a.seeds]
    for variant, seed in ((v, int(s)) for v, s in jobs):
        method = f"boost:{variant}"
        if (bench, method, seed) in seen:
            continue
        t0 = time.time()
        params = {**VARIANTS[variant], **json.loads(a.params)}
        model = create(
            "boost", base=str(a.base), scorers=tuple(map(str, a.scorer)), seed=seed, threads=a.threads, **params
        ).fit(train, dev_part(dev, a.dev_share, seed))
        fit_s = time.time() - t0
        if seed == 0:
            model.save(a.out / f"{bench}-{variant}")
        record(
            a.results,
            scores_row(
                bench,
                method,
                seed,
                model,
                test,
                t0,
                fit_seconds=fit_s,
                params=params,
                dev_share=a.dev_share,
                trained_on={k: v for k, v in model.trained_on_.items() if k != "train_sha256"},
                importance=importance(model)[:15],
            ),
        )


def report(results: Path) -> str:
    rows = [json.loads(line) for line in results.read_text().splitlines() if line.strip()]
    out = [
        "| bench | method | seeds | F1@1 | F1@3 | F1@5 | P@1 | candidate recall (stop part) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    keys = sorted(dict.fromkeys((r["bench"], r["method"]) for r in rows), key=lambda bm: bm[0])
    for bench, method in keys:
        rs = [r for r in rows if (r["bench"], r["method"]) == (bench, method)]

        def ms(i: int, key: str = "f1", rs: list[dict] = rs) -> str:
            v = np.array([r[key][i] for r in rs])
            return f"{v.mean():.4f} ± {v.std():.4f}" if len(v) > 1 else f"{v[0]:.4f}"

        recall = rs[0].get("trained_on", {}).get("candidate_recall", {}).get("stop")
        out.append(
            f"| {bench} | {method} | {len(rs)} | {ms(0)} | {ms(2)} | {ms(4)} | {ms(0, 'p')} | "
            f"{'' if recall is None else f'{recall:.3f}'} |"
        )
    return "\n".join(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, help="split directory (train, dev, test)")
    p.add_argument("--bench", help="name in the results (default: the split directory's name)")
    p.add_argument("--base", type=Path, help="trained base model directory (acnn)")
    p.add_argument("--scorer", type=Path, action="append", default=[], help="scorer model directory (repeatable)")
    p.add_argument("--anchor", type=Path, action="append", default=[], help="model scored alone for reference")
    p.add_argument("--variants", nargs="+", default=["rerank"], choices=list(VARIANTS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--runs", nargs="+", metavar="VARIANT:SEED", help="runs in this order (instead of variants x seeds)")
    p.add_argument("--params", default="{}", help="JSON of extra boost params for every run")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument(
        "--dev-share",
        type=float,
        default=1.0,
        help="train the booster on this random share of the dev posts (a learning curve; give each share its --bench)",
    )
    p.add_argument("--results", type=Path, default=RESULTS)
    p.add_argument("--out", type=Path, default=Path("runs/boost/models"), help="where seed-0 boost models are saved")
    p.add_argument("--report", action="store_true", help="print the Markdown table of --results and exit")
    p.add_argument("--plot", nargs=2, metavar=("MODEL_DIR", "PNG"), help="plot a saved boost's feature importance")
    a = p.parse_args()
    if a.report:
        print(report(a.results))
    elif a.plot:
        model = Recommender.load(a.plot[0])
        print(format_importance(importance(model)))  # type: ignore[arg-type]
        plot_importance(model, a.plot[1])  # type: ignore[arg-type]
    else:
        run(a)


if __name__ == "__main__":
    main()
