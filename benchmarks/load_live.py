"""Load benchmark of the server that learns (not a test): recommending while the stream is ingested.

Starts `hashrec serve --state DIR` (a fresh state directory, the ingest token in the environment)
with MODEL, then, for --seconds, at the same time:

- ingest: the reference stream's test part, in order, into `POST /posts`, --batch posts at a
  time on a steady schedule of --rate posts per second (a batch late on its schedule goes at once);
- recommend: --clients closed-loop keep-alive clients send single posts (the dev part's texts,
  k=5) to `POST /recommend`, as benchmarks/load_serve.py does;
- freshness: every --probe-every seconds a probe posts one new post whose text and hashtag no
  other post has, then asks each worker (one connection per worker, opened first: the server
  hands connections to its workers in turn) until the worker's `/model` says it learned the
  probe's log id ("learned") and, for a model that reads the text, until `/recommend` with the
  probe's text ranks the probe's hashtag in its top 5 ("recommendable"; a text-blind model never
  does, and the line says so).

Prints the recommending p50/p99 and failures, the ingest rate reached and its acknowledgement
latency, the freshness p50/p99/max, and the server's RSS (all its processes) at the end.

    PYTHONPATH=src python benchmarks/load_live.py --model runs/knn-warmup --workers 2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from load_serve import ROOT, _response, free_port, load_round, request, run_loop, start_server

from hashrec.data import read_posts

STREAM = ROOT.parent / "shared" / "benchmarks" / "weibo-stream"
TOKEN = "load-live-benchmark"


def http(method: str, path: str, body: dict | None = None, token: str | None = None) -> bytes:
    data = json.dumps(body, ensure_ascii=False).encode() if body is not None else b""
    auth = f"Authorization: Bearer {token}\r\n".encode() if token else b""
    return b"%s %s HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n%sContent-Length: %d\r\n\r\n%s" % (
        method.encode(),
        path.encode(),
        auth,
        len(data),
        data,
    )


async def call(conn: tuple[asyncio.StreamReader, asyncio.StreamWriter], payload: bytes) -> tuple[int, dict]:
    reader, writer = conn
    writer.write(payload)
    status, body = await _response(reader)
    return status, json.loads(body)


async def ingest(port: int, posts: list[dict], rate: float, batch: int, stop: float) -> dict:
    """POST /posts on a steady schedule until `stop`: posts acknowledged, failures, ack latencies."""
    conn = await asyncio.open_connection("127.0.0.1", port)
    acked, failed, latencies, start = 0, 0, [], time.perf_counter()
    for n, i in enumerate(range(0, len(posts), batch)):
        due = start + n * batch / rate
        now = time.perf_counter()
        if due > stop or now > stop:
            break
        if due > now:
            await asyncio.sleep(due - now)
        t0 = time.perf_counter()
        status, _ = await call(conn, http("POST", "/posts", {"posts": posts[i : i + batch]}, TOKEN))
        latencies.append(time.perf_counter() - t0)
        if status == 201:
            acked += len(posts[i : i + batch])
        else:
            failed += 1
    wall = time.perf_counter() - start
    conn[1].close()
    ms = np.array(latencies) * 1000
    return {
        "ingested": acked,
        "ingest_failed_batches": failed,
        "ingest_rate": round(acked / wall, 1),
        "ack_p50_ms": round(float(np.percentile(ms, 50)), 1),
        "ack_p99_ms": round(float(np.percentile(ms, 99)), 1),
    }


async def probe(port: int, conns: list, every: float, stop: float, timeout: float = 3.0) -> dict:
    """Freshness: seconds from a probe's acknowledgement until every worker (one of `conns` each) learned it,
    and recommends it."""
    workers = len(conns)
    learned, recommendable, n = [], [], 0
    while time.perf_counter() + every < stop:
        await asyncio.sleep(every)
        n += 1
        text, tag = f"探针{n}号 测试新鲜度 独有词{n}x{os.getpid()}", f"探针话题{n}"
        poster = await asyncio.open_connection("127.0.0.1", port)  # a new one: a kept one idles past keep-alive
        status, answer = await call(
            poster, http("POST", "/posts", {"posts": [{"text": text, "hashtags": [tag]}]}, TOKEN)
        )
        acked = time.perf_counter()
        poster[1].close()
        if status != 201:
            continue
        seen_learned: dict[int, float] = {}
        seen_top: dict[int, float] = {}
        while time.perf_counter() - acked < timeout and (len(seen_learned) < workers or len(seen_top) < workers):
            for w, conn in enumerate(conns):
                if w not in seen_learned:
                    _, info = await call(conn, http("GET", "/model"))
                    if info["live"]["learned_up_to"] >= answer["last_id"]:
                        seen_learned[w] = time.perf_counter() - acked
                if w not in seen_top:
                    _, rec = await call(conn, http("POST", "/recommend", {"text": text, "k": 5}))
                    if tag in [h["hashtag"] for h in rec["hashtags"]]:
                        seen_top[w] = time.perf_counter() - acked
            await asyncio.sleep(0.005)
        learned.append(max(seen_learned.values()) if len(seen_learned) == workers else float("inf"))
        recommendable.append(max(seen_top.values()) if len(seen_top) == workers else float("inf"))
    for _, writer in conns:
        writer.close()

    def figures(name: str, values: list[float]) -> dict:
        s = np.array(values)
        done = s[np.isfinite(s)]
        return {
            f"{name}_p50_s": round(float(np.percentile(done, 50)), 3) if len(done) else None,
            f"{name}_p99_s": round(float(np.percentile(done, 99)), 3) if len(done) else None,
            f"{name}_max_s": round(float(done.max()), 3) if len(done) else None,
            f"{name}_missed": int((~np.isfinite(s)).sum()),
        }

    return {"probes": len(learned), **figures("learned", learned), **figures("recommendable", recommendable)}


def rss_mib(pid: int) -> float:
    """Resident memory of process `pid` and its descendants (the workers), from /proc."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            total += int(
                next(
                    line for line in Path(f"/proc/{p}/status").read_text().splitlines() if line.startswith("VmRSS:")
                ).split()[1]
            )
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError, StopIteration):
            pass
    return total / 1024


async def run(a: argparse.Namespace, port: int, pid: int) -> dict:
    posts = [
        {"text": p.text, "hashtags": list(p.hashtags), "time": p.time, "user": p.user}
        for p in read_posts(STREAM / "test.jsonl.gz")
        if p.text.strip() and len(p.text) <= 2000
    ]
    texts = [
        request(p.text) for p in read_posts(STREAM / "dev.jsonl.gz")[:5000] if p.text.strip() and len(p.text) <= 2000
    ]
    await load_round(port, texts, 4, a.warmup, a.seconds, pid)
    # one connection per worker, opened before any other: the server hands them out in turn
    conns = [await asyncio.open_connection("127.0.0.1", port) for _ in range(a.workers)]
    stop = time.perf_counter() + a.seconds
    fresh = asyncio.ensure_future(probe(port, conns, a.probe_every, stop))
    fed = asyncio.ensure_future(ingest(port, posts, a.rate, a.batch, stop))
    row, _ = await load_round(port, texts, a.clients, 10**9, a.seconds, pid)
    return {
        "model": a.model.name,
        "workers": a.workers,
        **row,
        **(await fed),
        **(await fresh),
        "server_rss_mib": round(rss_mib(pid)),
    }


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--model", type=Path, required=True, help="saved model directory (one that learns online)")
    p.add_argument("--workers", type=int, default=2, help="server processes")
    p.add_argument("--clients", type=int, default=32, help="concurrent recommending clients")
    p.add_argument("--rate", type=float, default=500.0, help="posts per second ingested")
    p.add_argument("--batch", type=int, default=50, help="posts per POST /posts")
    p.add_argument("--seconds", type=float, default=60.0, help="length of the run")
    p.add_argument("--warmup", type=int, default=100, help="recommendations sent before measuring")
    p.add_argument("--probe-every", type=float, default=0.5, help="seconds between freshness probes")
    p.add_argument("--synchronous", choices=["full", "normal"], default="full", help="the post log's durability")
    a = p.parse_args()
    port, state = free_port(), Path(tempfile.mkdtemp(prefix="load-live-"))
    env = dict(os.environ, HASHREC_INGEST_TOKEN=TOKEN)
    server = start_server(
        a.model,
        port,
        a.workers,
        state / "server.log",
        env=env,
        extra=("--state", str(state / "state"), "--synchronous", a.synchronous),
    )
    try:
        print(json.dumps(run_loop(run(a, port, server.pid))), flush=True)
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
