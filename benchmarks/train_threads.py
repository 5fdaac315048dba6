"""ACNN training speed at each torch thread count, one after the other in the same run.

    .venv/bin/python benchmarks/train_threads.py --data ../shared/benchmarks/weibo --n-train 20000 --threads 1 2

Each count fits the model for one epoch on the first N training posts in a fresh process
(`hashrec.bench.bench_train`) and prints epoch time, posts/s and peak RSS, in wall and CPU seconds,
with the load average: the `threads` recommendation in docs/PERFORMANCE.md comes from here.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from hashrec.bench import bench_train, format_rows
from hashrec.config import parse_overrides


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--data", type=Path, default=Path("data/sample/weibo"), help="split directory (default: the bundled sample)"
    )
    p.add_argument("--model", default="acnn")
    p.add_argument("--n-train", type=int, default=20_000)
    p.add_argument("--n-dev", type=int, default=1000)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--budget", type=float, default=900.0, help="seconds per fit before it is stopped")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    a = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for threads in a.threads:
            job = {
                "model": a.model,
                "params": {"epochs": 1, **parse_overrides(a.set)},
                "data": str(a.data),
                "n_train": a.n_train,
                "n_dev": a.n_dev,
                "threads": threads,
                "budget": a.budget,
                "target_f1": 2.0,
                "stop_at_target": False,
                "model_dir": str(Path(tmp) / f"t{threads}"),
            }
            fit_rows, _ = bench_train(job)
            for r in fit_rows:
                r.measure = f"{r.measure}, {threads} thread(s)"
            rows += [r for r in fit_rows if "F1" not in r.measure]
    print(format_rows(rows))


if __name__ == "__main__":
    main()
