"""Which similarity should hknn's neighbours use? Dev F1@1 of the kNN vote over several views (not a test).

Scores a split's dev posts with the vote of `hashrec.models.knn.vote` (the k most similar training
posts, max(sim, 0)^power) over a grid of k and power, for every view alone and every mean of
several views' cosines (hknn's similarity): each network's h and the TF-IDF cosine of a trained
`knn`. Prints one line per setting; docs/results/boost.md has the figures.

    python benchmarks/diagnostics/hknn_views.py --data ../shared/benchmarks/weibo \
        --knn runs/baselines/weibo/models/knn \
        --network runs/exp/weibo/models/acnn-4c0bf9ed-seed0 --network runs/exp/weibo/models/attention-eecb7bd2-seed0
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from itertools import combinations
from pathlib import Path

import numpy as np

from hashrec.data import load_split
from hashrec.metrics import evaluate_ranked
from hashrec.models.base import Recommender
from hashrec.models.knn import unit_rows, vote
from hashrec.tokens import tokenize_many

BLOCK = 128  # dev posts per similarity block
Similarity = Callable[[slice], np.ndarray]  # dev rows -> (rows, n_train) similarities


def dev_f1(sim: Similarity, n_dev: int, k: int, power: float, train_tags, labels: list[str], gold: list) -> float:
    top = np.concatenate(
        [vote(sim(slice(s, s + BLOCK)), k, power, train_tags).argmax(1) for s in range(0, n_dev, BLOCK)]
    )
    return evaluate_ranked(gold, [[labels[j]] for j in top], ks=(1,))[1].f1


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, required=True, help="split directory (train, dev)")
    p.add_argument("--knn", type=Path, required=True, help="a knn model trained on DATA (its TF-IDF space)")
    p.add_argument("--network", type=Path, action="append", required=True, help="a network trained on DATA")
    p.add_argument("--k", type=int, nargs="+", default=[5, 10, 20, 50])
    p.add_argument("--power", type=float, nargs="+", default=[1, 2, 4, 8, 16])
    a = p.parse_args()

    train, dev = load_split(a.data, "train"), load_split(a.data, "dev")
    train_docs, dev_docs = tokenize_many([q.text for q in train]), tokenize_many([q.text for q in dev])
    gold = [q.hashtags for q in dev]

    knn = Recommender.load(a.knn)  # trained on DATA's train: its labels and their posts are the vote's
    labels, train_tags, words = knn.labels_, knn.train_tags_, knn.words_
    dev_tfidf, index_t = words.vectors(dev_docs), words.index.whole()
    views: dict[str, Similarity] = {"tfidf": lambda rows: (dev_tfidf[rows] @ index_t).toarray()}
    for path in a.network:
        net = Recommender.load(path)
        h_train, h_dev = unit_rows(net.hidden(train_docs)), unit_rows(net.hidden(dev_docs))
        views[path.name] = lambda rows, h_train=h_train, h_dev=h_dev: h_dev[rows] @ h_train.T

    def run(name: str, sim: Similarity, k: int, power: float) -> None:
        f1 = dev_f1(sim, len(dev), k, power, train_tags, labels, gold)
        print(f"{name}  k {k}  power {power:g}  dev F1@1 {f1:.4f}", flush=True)

    for n in range(1, len(views) + 1):
        for names in combinations(views, n):
            for k in a.k:
                for power in a.power:
                    run(
                        " + ".join(names),
                        lambda rows, names=names: sum(views[v](rows) for v in names) / len(names),
                        k,
                        power,
                    )


if __name__ == "__main__":
    main()
