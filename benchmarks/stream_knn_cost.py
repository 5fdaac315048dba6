"""What learning and recommending cost a streaming knn, against its index size (prints figures; not a test).

Fits knn (unigrams+bigrams, binary TF, tau 0.25 day) on the first --start posts of the stream
(warm-up, dev, test in order), then learns the rest in chunks of --chunk posts; when the index holds
each of --sizes posts it recommends --queries later posts (as of their time, chunk by chunk) with the
whole index scanned and with a horizon of 3 days. Prints ms per post for learning (amortised over
every chunk learned so far) and for recommending at each size, in the process's CPU time.

    python benchmarks/stream_knn_cost.py --warmup /tmp/warmup.jsonl.gz --data ../shared/benchmarks/weibo-stream
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

from hashrec.data import read_jsonl
from hashrec.models import create


def recommend_ms(model, posts, chunk: int) -> float:
    """CPU ms per post (the process's own time: the machine is shared, its wall time is not ours)."""
    t = time.process_time()
    for start in range(0, len(posts), chunk):
        part = posts[start : start + chunk]
        model.recommend([q.text for q in part], 5, at=[q.time for q in part])
    return 1000 * (time.process_time() - t) / len(posts)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--warmup", type=Path, required=True)
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--start", type=int, default=100_000)
    p.add_argument("--sizes", type=int, nargs="+", default=[100_000, 200_000, 417_686])
    p.add_argument("--chunk", type=int, default=100)
    p.add_argument("--queries", type=int, default=500)
    a = p.parse_args()
    stream = list(read_jsonl(a.warmup))
    stream += [q for part in ("dev", "test") for q in read_jsonl(a.data / f"{part}.jsonl.gz")]
    t = time.perf_counter()
    model = create("knn", k=50, power=1.0, tau=0.25, ngrams=2, binary=True).fit(stream[: a.start])
    print(f"fit on {a.start} posts: {time.perf_counter() - t:.0f} s", flush=True)
    learned, learn_s = a.start, 0.0
    for size in a.sizes:
        while learned < size:
            part = stream[learned : min(learned + a.chunk, size)]
            t = time.process_time()
            model.update(part)
            learn_s += time.process_time() - t
            learned += len(part)
        queries = stream[size : size + a.queries] or stream[size - a.queries : size]
        full = recommend_ms(model, queries, a.chunk)
        cut = model.config
        model.config = dataclasses.replace(cut, horizon=3)
        recent = recommend_ms(model, queries, a.chunk)
        model.config = cut
        learn = f"{1000 * learn_s / (learned - a.start):.3f}" if learned > a.start else "-"
        print(
            f"index {size:>7} posts: recommend {full:.1f} ms/post (whole index), {recent:.1f} ms/post "
            f"(horizon 3 days); learn {learn} ms/post amortised",
            flush=True,
        )


if __name__ == "__main__":
    main()
