"""Prequential kNN candidates on a stream, for choosing the streaming model's settings (not a test).

Fits `knn` (unigrams+bigrams, binary TF, the fit's IDF, neighbours at most 3 days old) on WARMUP, then
replays dev and test in chunks of --chunk posts: each chunk is scored as of its time (every earlier post,
none of the chunk), then learned.
The similarities are computed once per chunk and voted under several (power, tau) settings, k = 50 and 20;
each post's 30 best hashtags and their votes are written to OUT (npz), with the labels and the stream's
gold, time and user, so that benchmarks/stream_tune.py can mix in trending and author signals cheaply.

    python benchmarks/stream_candidates.py --warmup /tmp/warmup.jsonl.gz \
        --data ../shared/benchmarks/weibo-stream --out runs/stream/candidates.npz
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from hashrec.data import read_jsonl
from hashrec.models import create
from hashrec.models.knn import recency
from hashrec.tokens import tokenize_many

SETTINGS = [(1.0, 0.25), (3.0, 0.25), (1.0, 0.5), (1.0, 1.0)]  # (power, tau days)
KS, TOP = (50, 20), 30


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--warmup", type=Path, required=True)
    p.add_argument("--data", type=Path, required=True, help="directory with dev.jsonl.gz and test.jsonl.gz")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--chunk", type=int, default=100)
    p.add_argument("--parts", default="dev,test")
    p.add_argument("--limit", type=int, help="only the first N stream posts (a quick check)")
    p.add_argument("--set", action="append", default=[], help="knn setting k=v (Python literal)")
    a = p.parse_args()

    params = dict(k=50, ngrams=2, binary=True, horizon=3)
    for kv in a.set:
        key, _, value = kv.partition("=")
        params[key] = json.loads(value)
    t0 = time.perf_counter()
    knn = create("knn", **params).fit(list(read_jsonl(a.warmup)))
    print(f"fit {time.perf_counter() - t0:.0f} s, {len(knn.words_.vocab)} words", flush=True)
    stream = [q for part in a.parts.split(",") for q in read_jsonl(a.data / f"{part}.jsonl.gz")]
    stream = stream[: a.limit] if a.limit else stream
    n = len(stream)
    cand = {(s, k): (np.zeros((n, TOP), np.int32), np.zeros((n, TOP), np.float32)) for s in SETTINGS for k in KS}
    t_rec = t_learn = 0.0
    for start in range(0, n, a.chunk):
        posts = stream[start : start + a.chunk]
        t = time.perf_counter()
        docs = tokenize_many([q.text for q in posts])
        first = knn._first_within_horizon(np.array([q.time for q in posts]))
        sims = np.vstack(list(knn.similarities(docs, first)))
        tags = knn.train_tags_[first:]
        for power, tau in SETTINGS:
            weight = np.stack([recency(knn.times_[first:], q.time, tau, knn.config.horizon) for q in posts])
            score = np.maximum(sims, 0) ** power * weight
            idx = np.argpartition(-score, 49, axis=1)[:, :50]
            val = np.take_along_axis(score, idx, axis=1)
            order = np.argsort(-val, axis=1)
            idx, val = np.take_along_axis(idx, order, 1), np.take_along_axis(val, order, 1)
            for k in KS:
                votes = np.zeros((len(posts), tags.shape[1]))
                for r in range(len(posts)):
                    row = tags[idx[r, :k]]
                    np.add.at(votes[r], row.indices, np.repeat(val[r, :k], np.diff(row.indptr)))
                top = np.argsort(-votes, axis=1)[:, :TOP]
                cand[(power, tau), k][0][start : start + len(posts)] = top
                cand[(power, tau), k][1][start : start + len(posts)] = np.take_along_axis(votes, top, 1)
        t_rec += time.perf_counter() - t
        t = time.perf_counter()
        knn.update(posts)
        t_learn += time.perf_counter() - t
        if start // a.chunk % 50 == 0:
            print(
                f"{start + len(posts)}/{n} recommend {1000 * t_rec / (start + len(posts)):.1f} ms/post "
                f"learn {1000 * t_learn / (start + len(posts)):.2f} ms/post",
                flush=True,
            )
    arrays = {f"{'x'.join(map(str, s))}_k{k}_{w}": v[i] for (s, k), v in cand.items() for i, w in enumerate("iv")}
    meta = {
        "labels": knn.labels_,
        "n_warmup": int(knn.trained_on_["n_train"]),
        "params": params,
        "gold": [list(q.hashtags) for q in stream],
        "time": [q.time for q in stream],
        "user": [q.user for q in stream],
        "parts": a.parts,
        "ms_recommend": 1000 * t_rec / n,
        "ms_learn": 1000 * t_learn / n,
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(a.out, meta=np.array(json.dumps(meta, ensure_ascii=False)), **arrays)
    print(json.dumps({k: v for k, v in meta.items() if k.startswith("ms")}))


if __name__ == "__main__":
    main()
