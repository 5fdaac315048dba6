"""Prequential evaluation of one model on a stream (the protocol of ../shared/benchmarks/weibo-stream).

Fits --model on WARMUP, then replays dev and test in chunks of --chunk posts: each chunk is recommended
as of its posts' times and for their authors (the model may use every earlier post, none of the chunk),
then learned. Prints micro F1@1..5 (Eq. 11) of the dev part and of the test part, each also split
into posts whose gold hashtags had appeared in an earlier chunk (seen) and the others (new), and the
learning and recommending cost in CPU ms per post (the process's time: the machine may be shared).
`hashrec stream` is the command for users; this script measured the figures of docs/results/stream.md.

    python benchmarks/stream_eval.py --model stream --warmup /tmp/warmup.jsonl.gz \
        --data ../shared/benchmarks/weibo-stream [--set k=50] [--parts dev]
"""

from __future__ import annotations

import argparse
import ast
import json
import time
from pathlib import Path

from hashrec.data import read_jsonl
from hashrec.metrics import evaluate_ranked
from hashrec.models import create


def scores(gold: list, ranked: list, rows: list[bool]) -> dict[str, float]:
    g = [x for x, keep in zip(gold, rows) if keep]
    r = [x for x, keep in zip(ranked, rows) if keep]
    return {f"f1@{k}": round(s.f1, 4) for k, s in evaluate_ranked(g, r).items()} | {"posts": len(g)} if g else {}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="stream")
    p.add_argument("--warmup", type=Path, required=True)
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--parts", default="dev,test")
    p.add_argument("--chunk", type=int, default=100)
    p.add_argument("--limit", type=int, help="only the first N stream posts (a quick check)")
    p.add_argument("--no-users", action="store_true", help="recommend without the authors")
    p.add_argument("--set", action="append", default=[], help="model setting k=v (Python literal)")
    a = p.parse_args()
    params = {k: ast.literal_eval(v) for k, v in (kv.split("=", 1) for kv in a.set)}

    t0 = time.process_time()
    model = create(a.model, **params).fit(list(read_jsonl(a.warmup)))
    fit_s = time.process_time() - t0
    parts = a.parts.split(",")
    stream = [(part, q) for part in parts for q in read_jsonl(a.data / f"{part}.jsonl.gz")]
    stream = stream[: a.limit] if a.limit else stream
    seen_tags = set(model.labels_)
    gold, ranked, seen, part_of = [], [], [], []
    t_rec = t_learn = 0.0
    for start in range(0, len(stream), a.chunk):
        chunk = [q for _, q in stream[start : start + a.chunk]]
        t = time.process_time()
        recs = model.recommend(
            [q.text for q in chunk], 5, at=[q.time for q in chunk], user=None if a.no_users else [q.user for q in chunk]
        )
        t_rec += time.process_time() - t
        t = time.process_time()
        model.update(chunk)
        t_learn += time.process_time() - t
        gold += [q.hashtags for q in chunk]
        ranked += [[tag for tag, _ in r] for r in recs]
        seen += [any(tag in seen_tags for tag in q.hashtags) for q in chunk]
        part_of += [part for part, _ in stream[start : start + a.chunk]]
        seen_tags.update(tag for q in chunk for tag in q.hashtags)
    report = {
        "model": a.model,
        "params": model.get_params(),
        "fit_s": round(fit_s, 1),
        "ms_recommend": round(1000 * t_rec / len(stream), 2),
        "ms_learn": round(1000 * t_learn / len(stream), 3),
    }
    for part in parts:
        rows = [x == part for x in part_of]
        report[part] = {
            "all": scores(gold, ranked, rows),
            "seen": scores(gold, ranked, [r and s for r, s in zip(rows, seen)]),
            "new": scores(gold, ranked, [r and not s for r, s in zip(rows, seen)]),
            "ceiling": round(sum(r and s for r, s in zip(rows, seen)) / sum(rows), 4),
        }
    print(json.dumps(report, ensure_ascii=False))


if __name__ == "__main__":
    main()
