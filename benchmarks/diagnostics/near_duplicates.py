"""Why TF-IDF kNN is hard to beat on weibo: F1@1 of each model by how close the test post's nearest training post is.

    .venv/bin/python benchmarks/diagnostics/near_duplicates.py --data ../shared/benchmarks/weibo \\
        --knn runs/compare/weibo/models/knn --model runs/compare/weibo/models/acnn --model runs/compare/weibo/models/nb

The nearest-neighbour cosine comes from the saved kNN model's own TF-IDF space. Each bucket's
F1@1 is Eq. 11 over that bucket's test posts only; the share column says how much of the test
split the bucket holds.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from hashrec.data import load_split
from hashrec.metrics import evaluate_ranked
from hashrec.models.base import Recommender
from hashrec.tokens import tokenize_many

EDGES = (0.0, 0.5, 0.8, 0.95, 1.0 + 1e-9)


def nearest_cosine(knn: Recommender, docs: list[list[str]]) -> np.ndarray:
    return np.concatenate([sim.max(axis=1) for sim in knn.words_.cosines(docs)])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--knn", type=Path, required=True, help="saved knn model (also scored)")
    p.add_argument("--model", type=Path, action="append", default=[], help="other saved models to score")
    a = p.parse_args()
    test = load_split(a.data, "test")
    docs = tokenize_many([x.text for x in test])
    gold = [x.hashtags for x in test]
    knn = Recommender.load(a.knn)
    cos = nearest_cosine(knn, docs)
    bucket = np.digitize(cos, EDGES) - 1
    models = [knn] + [Recommender.load(m) for m in a.model]
    ranked = {m.name: [[t for t, _ in r] for r in m.rank_docs(docs, 1)] for m in models}
    names = list(ranked)
    print("| nearest training post (cosine) | share of test | " + " | ".join(f"{n} F1@1" for n in names) + " |")
    print("|---" * (2 + len(names)) + "|")
    for b in range(len(EDGES) - 1):
        idx = np.flatnonzero(bucket == b)
        if not len(idx):
            continue
        f1 = [evaluate_ranked([gold[i] for i in idx], [ranked[n][i] for i in idx], ks=(1,))[1].f1 for n in names]
        hi = min(EDGES[b + 1], 1.0)
        print(f"| {EDGES[b]:.2f}-{hi:.2f} | {len(idx) / len(test):.1%} | " + " | ".join(f"{v:.4f}" for v in f1) + " |")
    allf = [evaluate_ranked(gold, ranked[n], ks=(1,))[1].f1 for n in names]
    print("| all | 100% | " + " | ".join(f"{v:.4f}" for v in allf) + " |")


if __name__ == "__main__":
    main()
