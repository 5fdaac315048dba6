"""Tokenise a whole split (default: weibo-full train, 397,686 posts) as `Recommender.fit` does, and time it.

    .venv/bin/python benchmarks/tokenize_full.py runs/weibo-full --workers 2

Prints wall seconds, CPU seconds (this process and its worker processes) and the load average
before and after, for a cold cache (a fresh temporary HASHREC_CACHE: tokenise + write the cache)
and then a warm one (read the cache back). Target (docs/PERFORMANCE.md): at most 3 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

from hashrec.bench import cpu_seconds
from hashrec.data import load_split
from hashrec.tokens import tokenize_many


def timed(fn) -> dict[str, float]:
    load0, wall0, cpu0 = os.getloadavg()[0], time.perf_counter(), cpu_seconds()
    fn()
    return {
        "wall_s": round(time.perf_counter() - wall0, 1),
        "cpu_s": round(cpu_seconds() - cpu0, 1),
        "load_before": round(load0, 2),
        "load_after": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", help="split directory, e.g. runs/weibo-full")
    p.add_argument("--part", default="train")
    p.add_argument("--workers", type=int, default=2)
    a = p.parse_args()
    texts = [post.text for post in load_split(a.data, a.part)]
    with tempfile.TemporaryDirectory() as cache:
        os.environ["HASHREC_CACHE"] = cache  # read by tokenize_many at each call
        cold = timed(lambda: tokenize_many(texts, workers=a.workers))
        warm = timed(lambda: tokenize_many(texts, workers=a.workers))
    print(json.dumps({"posts": len(texts), "workers": a.workers, "cold": cold, "warm": warm}))


if __name__ == "__main__":
    main()
