"""k nearest neighbours over TF-IDF: a practical anchor beside the paper's baselines (not in Table 1).

The most similar training posts vote for their hashtags. On crawls with many near-duplicate
posts (weibo-covid19, see ../shared/benchmarks/README.md) this is a strong and honest yardstick.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from hashrec.config import check
from hashrec.models.base import Dev, Docs, Recommender, Tags
from hashrec.models.bow import (break_ties_by_popularity, count_matrix, training_matrices, inverse_document_frequency,
                                sparse_from_arrays, sparse_to_arrays, tfidf)
from hashrec.tokens import Vocab

BLOCK = 128  # query posts per dense (BLOCK, n_train) similarity block: 128 x 100k float64 = 100 MB


@dataclass(frozen=True)
class KNNConfig:
    """k: neighbours that vote. power: a neighbour's vote is cos^power (larger trusts the
    closest more). min_count: words seen fewer times in training are ignored."""

    k: int = 20
    power: float = 2.0
    min_count: int = 1

    def __post_init__(self) -> None:
        check(self.k >= 1, f"knn: k must be >= 1 (neighbours), got {self.k}")
        check(self.power >= 0, f"knn: power must be >= 0, got {self.power}")
        check(self.min_count >= 1, f"knn: min_count must be >= 1, got {self.min_count}")


class KNN(Recommender):
    """Similarity-weighted vote of the k nearest training posts.

    Score: s(t|d) = sum_{j in N_k(d)} cos(d, j)^power [t in tags(j)], with cos over
    L2-normalised TF-IDF vectors; ties (no known word) fall back to popularity.
    """

    name = "knn"
    Config = KNNConfig

    def _fit(self, docs: Docs, tags: Tags, dev: Dev | None) -> None:
        self.vocab_, X, self.train_tags_ = training_matrices(docs, self.label_ids(tags), len(self.labels_),
                                                             self.config.min_count)
        self.idf_ = inverse_document_frequency(X)
        self.train_ = tfidf(X, self.idf_)
        self.train_t_ = sp.csr_matrix(self.train_.T)  # (n_words, n_train), transposed once, not per batch

    def _scores(self, docs: Docs) -> np.ndarray:
        Q = tfidf(count_matrix(docs, self.vocab_), self.idf_)
        k = min(self.config.k, self.train_.shape[0])
        out = []
        for start in range(0, Q.shape[0], BLOCK):
            sim = (Q[start:start + BLOCK] @ self.train_t_).toarray()  # (B, n_train) cosines
            idx = np.argpartition(-sim, k - 1, axis=1)[:, :k]
            votes = np.take_along_axis(sim, idx, axis=1) ** self.config.power
            rows = np.repeat(np.arange(len(sim)), k)
            W = sp.csr_matrix((votes.ravel(), (rows, idx.ravel())), shape=sim.shape)
            out.append((W @ self.train_tags_).toarray())
        return break_ties_by_popularity(np.vstack(out), self.label_counts_)

    def _state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        return ({"idf": self.idf_, **sparse_to_arrays("train", self.train_),
                 **sparse_to_arrays("train_tags", self.train_tags_)}, {"vocab": self.vocab_.itos})

    def _set_state(self, arrays: dict[str, np.ndarray], state: dict[str, Any]) -> None:
        self.vocab_ = Vocab(list(state["vocab"]))
        self.idf_ = arrays["idf"]
        self.train_ = sparse_from_arrays("train", arrays)
        self.train_t_ = sp.csr_matrix(self.train_.T)
        self.train_tags_ = sparse_from_arrays("train_tags", arrays)
