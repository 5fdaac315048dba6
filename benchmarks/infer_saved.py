"""Inference of saved models against fastText's own predict, in one run (the serving half of `hashrec bench`).

    .venv/bin/python benchmarks/infer_saved.py --model runs/exp/weibo/models/acnn-... \
        --fasttext runs/exp/weibo/models/fasttext-... --data ../shared/benchmarks/weibo --threads 2

`hashrec bench` trains its own model first; this script times models already trained to
convergence (e.g. by `hashrec experiment --save-models`) on the first --n test posts: batch
throughput and single-post latency, text in and tokens in, the acnn / fastText ratio, the
thread and batch-size sweeps, serving RSS and the achieved fraction of the matmul peak.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from pathlib import Path

from hashrec.bench import FULL, Rate, bench_serve, format_rows
from hashrec.data import load_split


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, required=True, help="saved acnn, cnn or attention directory")
    p.add_argument("--fasttext", type=Path, required=True, help="saved fasttext directory")
    p.add_argument(
        "--data", type=Path, default=Path("data/sample/weibo"), help="split directory (default: the bundled sample)"
    )
    p.add_argument("--n", type=int, default=10_000, help="test posts")
    p.add_argument("--seconds", type=float, default=20.0, help="cap on each measurement")
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    plan = dataclasses.replace(FULL, n_infer=a.n, seconds=a.seconds)
    job = {
        "model": "acnn",
        "threads": a.threads,
        "texts": [x.text for x in load_split(a.data, "test")[: a.n]],
        "plan": dataclasses.asdict(plan),
        "model_dir": str(a.model),
        "fasttext": str(a.fasttext),
    }
    rows = bench_serve(job, plan, train=Rate(math.nan, math.nan))
    print(format_rows([r for r in rows if "training" not in r.measure]))


if __name__ == "__main__":
    main()
