"""Cost of the post log's durability (not a test): one writer appends the stream's test posts in batches,
with synchronous=full (an fsync per batch) and normal (fsyncs at checkpoints only), alternating.

    PYTHONPATH=src python benchmarks/postlog_sync.py --posts 10000 --batch 50 --repeat 2
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from hashrec.data import read_posts
from hashrec.postlog import PostLog

STREAM = Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "weibo-stream"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--posts", type=int, default=10_000)
    p.add_argument("--batch", type=int, default=50, help="posts per transaction (one POST /posts)")
    p.add_argument("--repeat", type=int, default=2, help="runs of each setting, alternating")
    p.add_argument(
        "--dir", type=Path, help="where the logs go (default: a temporary directory); the disk decides the fsync's cost"
    )
    a = p.parse_args()
    posts = read_posts(STREAM / "test.jsonl.gz")[: a.posts]
    for mode in ("full", "normal") * a.repeat:
        log = PostLog(tempfile.mkdtemp(dir=a.dir, prefix="postlog-sync-"), mode)
        ms = []
        start = time.perf_counter()
        for i in range(0, len(posts), a.batch):
            t0 = time.perf_counter()
            log.append(posts[i : i + a.batch], arrival=time.time())
            ms.append(1000 * (time.perf_counter() - t0))
        wall = time.perf_counter() - start
        log.close()
        print(
            f"synchronous={mode}: {len(ms)} batches of {a.batch}: mean {np.mean(ms):.2f} ms, "
            f"p50 {np.percentile(ms, 50):.2f} ms, p99 {np.percentile(ms, 99):.2f} ms; "
            f"{len(posts) / wall:,.0f} posts/s",
            flush=True,
        )


if __name__ == "__main__":
    main()
