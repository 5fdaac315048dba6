"""The stream's test part replayed through the server that learns, against the same replay in process (not a test).

For each chunk of --chunk posts, in stream order: recommend the chunk's posts (`POST /recommend/batch`,
top 5) and then learn them (`POST /posts`), as `hashrec stream` does in process (recommend, then
`Recommender.update`). The same replay then runs in this process on the same model, and both
F1@1 (Eq. 11, micro) are printed: the server must match, within 0.01. The server learns each
chunk before the next is recommended: after its acknowledgement, the script waits until every
worker's `/model` says it learned the chunk (one connection per worker, opened first).

    PYTHONPATH=src python benchmarks/replay_live.py --model runs/knn-warmup --workers 2 --posts 54290
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import httpx
from load_live import STREAM, TOKEN
from load_serve import free_port, start_server

from hashrec import api
from hashrec.data import Post, read_posts
from hashrec.metrics import evaluate_ranked

MAX_BATCH = 64  # the server's default --max-batch


def in_process(model_dir: Path, posts: list[Post], chunk: int) -> list[list[str]]:
    model = api.load(model_dir)
    ranked: list[list[str]] = []
    for i in range(0, len(posts), chunk):
        part = posts[i : i + chunk]
        ranked += [[t for t, _ in r] for r in model.recommend([p.text for p in part], 5)]
        model.update(part)
    return ranked


def through_server(base: str, workers: int, posts: list[Post], chunk: int) -> list[list[str]]:
    conns = [httpx.Client(base_url=base, timeout=60) for _ in range(workers)]
    for c in conns:  # opened now, in turn: one connection per worker
        c.get("/health")
    auth = {"Authorization": f"Bearer {TOKEN}"}
    ranked: list[list[str]] = []
    for i in range(0, len(posts), chunk):
        part = posts[i : i + chunk]
        for j in range(0, len(part), MAX_BATCH):
            texts = [p.text for p in part[j : j + MAX_BATCH]]
            r = conns[(i // chunk) % workers].post("/recommend/batch", json={"texts": texts, "k": 5})
            r.raise_for_status()
            ranked += [[h["hashtag"] for h in res["hashtags"]] for res in r.json()["results"]]
        for j in range(0, len(part), MAX_BATCH):  # POST /posts takes --max-batch posts too
            r = conns[0].post(
                "/posts",
                headers=auth,
                json={
                    "posts": [
                        {"text": p.text, "hashtags": list(p.hashtags), "time": p.time, "user": p.user}
                        for p in part[j : j + MAX_BATCH]
                    ]
                },
            )
            r.raise_for_status()
        last = r.json()["last_id"]
        for c in conns:
            while c.get("/model").json()["live"]["learned_up_to"] < last:
                time.sleep(0.01)
    for c in conns:
        c.close()
    return ranked


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, required=True, help="saved model directory (one that learns online)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--chunk", type=int, default=100)
    p.add_argument("--posts", type=int, default=54_290, help="test posts replayed (all: 54,290)")
    a = p.parse_args()
    posts = [p for p in read_posts(STREAM / "test.jsonl.gz") if p.text.strip() and len(p.text) <= 2000][: a.posts]
    gold = [p.hashtags for p in posts]
    port, state = free_port(), Path(tempfile.mkdtemp(prefix="replay-live-"))
    env = dict(os.environ, HASHREC_INGEST_TOKEN=TOKEN)
    server = start_server(
        a.model, port, a.workers, state / "server.log", env=env, extra=("--state", str(state / "state"))
    )
    try:
        t0 = time.perf_counter()
        served = through_server(f"http://127.0.0.1:{port}", a.workers, posts, a.chunk)
        wall = time.perf_counter() - t0
    finally:
        server.terminate()
        server.wait(timeout=30)
    local = in_process(a.model, posts, a.chunk)
    f_server, f_local = (evaluate_ranked(gold, r, (1,))[1].f1 for r in (served, local))
    print(
        f"{len(posts)} test posts, chunk {a.chunk}, {a.workers} workers: F1@1 through the server {f_server:.4f}, "
        f"in process {f_local:.4f}, difference {abs(f_server - f_local):.4f}; the server replay took {wall:.0f} s"
    )


if __name__ == "__main__":
    main()
