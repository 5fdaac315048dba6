"""Recall@k of hashrec.models.ann.SparseANN against exact cosine search, and its cost against the index size.

The index holds the first posts of the reference stream's dev part (TF-IDF over their own
vocabulary, as knn's `Words`); the queries are the last `--queries` dev posts. Recall@k counts
an approximate neighbour as right when its exact cosine is at least the k-th exact cosine (ties
are not misses), over queries with at least one word in the vocabulary. `--scale` then grows an
index from the weibo-covid19 posts in time order (the whole stream: 417k posts) and prints the
cost of a query at each size, exact and approximate, one query at a time, as the server asks.

    PYTHONPATH=src python benchmarks/ann_recall.py --dev ../shared/benchmarks/weibo-stream/dev.jsonl.gz
    PYTHONPATH=src python benchmarks/ann_recall.py --scale ../shared/data/weibo-covid19 --sizes 100000,417000
"""

from __future__ import annotations

import argparse
import time
from functools import partial

import numpy as np

from hashrec.data import read_posts, read_weibo_covid19
from hashrec.models.ann import ANNConfig, SparseANN
from hashrec.models.bow import count_matrix, tfidf
from hashrec.models.knn import Words
from hashrec.tokens import tokenize_many


def exact_top(words: Words, docs: list[list[str]], k: int) -> np.ndarray:
    """The k nearest indexed posts of each doc by exact cosine (knn's search today)."""
    sims = np.vstack(list(words.cosines(docs)))
    return np.argpartition(-sims, k - 1, axis=1)[:, :k]


def recall(words: Words, ann: SparseANN, docs: list[list[str]], k: int) -> float:
    sims = np.vstack(list(words.cosines(docs)))
    kth = -np.sort(-sims, axis=1)[:, k - 1 : k]  # the k-th exact cosine: an approximate neighbour this close is right
    keys, _ = ann_search(ann, words, k, docs)
    got = np.where(keys >= 0, np.take_along_axis(sims, np.maximum(keys, 0), 1), 0.0)
    hits = ((got >= kth - 1e-9) & (got > 0)).sum(axis=1)
    wanted = np.minimum(k, (sims > 0).sum(axis=1))  # a query with fewer positive cosines wants only those
    asked = wanted > 0
    return float(np.minimum(hits, wanted)[asked].sum() / wanted[asked].sum())


def ann_search(ann: SparseANN, words: Words, k: int, docs: list[list[str]]) -> tuple[np.ndarray, np.ndarray]:
    """The k approximate nearest indexed posts of each doc, by the TF-IDF of the index's vocabulary."""
    return ann.search(tfidf(count_matrix(docs, words.vocab), words.idf), k)


def per_query_ms(fn, docs: list[list[str]]) -> float:
    start = time.perf_counter()
    for d in docs:
        fn([d])
    return (time.perf_counter() - start) / len(docs) * 1000


def run_recall(args: argparse.Namespace) -> None:
    posts = read_posts(args.dev)
    docs = tokenize_many([p.text for p in posts])
    index_docs, queries = docs[: -args.queries], docs[-args.queries :]
    words = Words.fit(index_docs)
    print(f"index {len(index_docs)} dev posts, {len(words.vocab)} words; {len(queries)} queries; k={args.k}")
    for dim in args.dims:
        for oversample in args.oversample:
            cfg = ANNConfig(
                dim=dim, oversample=oversample, dtype=args.dtype, postings=args.postings, rare_words=args.rare_words
            )
            ann = SparseANN(cfg)
            start = time.perf_counter()
            ann.add(words.train)
            build = time.perf_counter() - start
            r = recall(words, ann, queries, args.k)
            ms = per_query_ms(partial(ann_search, ann, words, args.k), queries)
            print(
                f"dim {dim:4d} oversample {oversample:2d} postings {args.postings} x {args.rare_words}: "
                f"recall@{args.k} {r:.4f}, {ms:.2f} ms/query, build {build:.1f} s, {ann.nbytes() / 2**20:.0f} MiB",
                flush=True,
            )


def run_scale(args: argparse.Namespace) -> None:
    posts = [p for p in read_weibo_covid19(args.scale, chronological=True) if p.hashtags][: max(args.sizes)]
    docs = tokenize_many([p.text for p in posts], progress=True)
    queries = docs[-args.queries :]
    cfg = ANNConfig(
        dim=args.dims[0],
        oversample=args.oversample[0],
        dtype=args.dtype,
        postings=args.postings,
        rare_words=args.rare_words,
    )
    print(f"{len(docs)} posts in time order; queries: the last {len(queries)}; {cfg}")
    for size in args.sizes:
        words = Words.fit(docs[:size])
        ann = SparseANN(cfg)
        ann.add(words.train)
        exact = per_query_ms(partial(exact_top, words, k=args.k), queries)
        approx = per_query_ms(partial(ann_search, ann, words, args.k), queries)
        print(
            f"{size:7d} posts: exact {exact:.2f} ms/query, ann {approx:.2f} ms/query, "
            f"recall@{args.k} {recall(words, ann, queries, args.k):.4f}, {ann.nbytes() / 2**20:.0f} MiB",
            flush=True,
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dev", help="the stream's dev part (dev.jsonl.gz): recall against exact search")
    ap.add_argument("--scale", help="weibo-covid19 source folder: query cost at --sizes posts")
    ap.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")], default=[100_000, 417_000])
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--dims", type=lambda s: [int(x) for x in s.split(",")], default=[ANNConfig.dim])
    ap.add_argument("--oversample", type=lambda s: [int(x) for x in s.split(",")], default=[ANNConfig.oversample])
    ap.add_argument("--dtype", default="f32", choices=["f32", "f16"], help="how the graph stores the sketches")
    ap.add_argument("--postings", type=int, default=ANNConfig.postings, help="latest posts per word joined (0: none)")
    ap.add_argument(
        "--rare-words", type=int, default=ANNConfig.rare_words, help="the query's words whose postings join"
    )
    args = ap.parse_args()
    if args.dev:
        run_recall(args)
    if args.scale:
        run_scale(args)


if __name__ == "__main__":
    main()
