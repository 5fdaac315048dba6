"""k nearest neighbours: the most similar training posts vote for their hashtags.

`knn` compares posts by TF-IDF: a practical anchor beside the paper's baselines (not in Table 1).
On crawls with many near-duplicate posts (weibo-covid19, see ../shared/benchmarks/README.md) it
is a strong and honest yardstick. `hknn` compares them by a trained network's combined layer h:
the talk's "network as feature extractor" (PAPER.md §5) with the simplest learner on its features.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import scipy.sparse as sp

from hashrec.config import check
from hashrec.data import Post
from hashrec.errors import ConfigError, ModelFileError
from hashrec.models.base import Dev, Docs, Recommender, Tags, check_posts, fingerprint, model_sha256
from hashrec.models.bow import (break_ties_by_popularity, count_matrix, inverse_document_frequency, label_matrix,
                                sparse_from_arrays, sparse_to_arrays, tfidf, training_matrices)
from hashrec.tokens import Vocab

BLOCK = 128  # query posts per dense (BLOCK, n_train) similarity block: 128 x 100k float64 = 100 MB


def vote(sim: np.ndarray, k: int, power: float, train_tags: sp.csr_matrix) -> np.ndarray:
    """(B, n_labels) votes from similarities `sim` (B, n_train): each row's k most similar training
    posts vote for their hashtags (`train_tags`, 0/1) with max(sim, 0)^power.

    A neighbour less similar than an unrelated post (cosine below 0: possible between network
    vectors, never between TF-IDF ones) gets no say.

    >>> vote(np.array([[0.9, 0.5, -0.2]]), 2, 1.0, sp.csr_matrix(np.eye(3))).tolist()
    [[0.9, 0.5, 0.0]]
    """
    k = min(k, sim.shape[1])
    idx = np.argpartition(-sim, k - 1, axis=1)[:, :k]
    votes = np.maximum(np.take_along_axis(sim, idx, axis=1), 0) ** power
    rows = np.repeat(np.arange(len(sim)), k)
    W = sp.csr_matrix((votes.ravel(), (rows, idx.ravel())), shape=sim.shape)
    return (W @ train_tags).toarray()


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
        out = [vote((Q[start:start + BLOCK] @ self.train_t_).toarray(), self.config.k, self.config.power,
                    self.train_tags_) for start in range(0, Q.shape[0], BLOCK)]
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


@dataclass(frozen=True)
class NetworkKNNConfig:
    """base: model directory of a network (acnn, cnn, attention) trained on the same posts; its
    combined layer h places the posts. k, power: as knn's (defaults chosen on weibo's dev posts,
    docs/results/boost.md)."""

    base: str = ""
    k: int = 20
    power: float = 8.0

    def __post_init__(self) -> None:
        check(bool(self.base), "hknn needs base=MODEL_DIR, a network trained on the same posts "
              "(hashrec train --model hknn --base runs/acnn --data DIR)")
        check(self.k >= 1, f"hknn: k must be >= 1 (neighbours), got {self.k}")
        check(self.power >= 0, f"hknn: power must be >= 0, got {self.power}")


class NetworkKNN(Recommender):
    """k nearest neighbours by the network's h, the combined layer that feeds the softmax (Eq. 9).

    Score: s(t|d) = sum_{j in N_k(d)} max(cos(h_d, h_j), 0)^power [t in tags(j)] over the base's
    own training posts. Not in the paper: the network's softmax generalises over hashtags, the
    neighbours remember single posts (weibo's near-copies, where TF-IDF kNN beats the network,
    docs/results/acnn.md); h compares posts by what the network learned matters for hashtags.

    The memory is exactly the base's training posts (checked by their fingerprint, as boost does):
    a post the network learned from has an overfitted h, and boost, which checks each scorer's
    training posts, can then trust that the network never saw its dev posts either.
    """

    name = "hknn"
    Config = NetworkKNNConfig

    def fit(self, train: Sequence[Post], dev: Sequence[Post] | None = None) -> "NetworkKNN":
        train = check_posts(train, "hknn.fit(train)")
        self._load_base()
        if self.base_.trained_on_.get("train_sha256") != fingerprint([p.text for p in train]):
            raise ConfigError(f"hknn: {self.config.base} was not trained on these posts; its memory must be "
                              "the network's own training split (train hknn on the --data its base was trained on)")
        return super().fit(train, dev)

    def _load_base(self) -> None:
        self.base_ = Recommender.load(self.config.base)
        if not hasattr(self.base_, "hidden"):
            raise ConfigError(f"hknn: {self.config.base} is a {self.base_.name} model; its base must be a "
                              "network with a combined layer h (acnn, cnn, attention)")
        self.base_sha256_ = model_sha256(self.config.base)

    def _h(self, docs: Docs) -> np.ndarray:
        h = self.base_.hidden(docs)
        return h / np.maximum(np.linalg.norm(h, axis=1, keepdims=True), 1e-12)

    def _fit(self, docs: Docs, tags: Tags, dev: Dev | None) -> None:
        self.memory_ = self._h(docs)  # (n_train, hidden) unit rows
        self.train_tags_ = label_matrix(self.label_ids(tags), len(self.labels_))

    def _scores(self, docs: Docs) -> np.ndarray:
        q = self._h(docs)
        out = [vote(q[start:start + BLOCK] @ self.memory_.T, self.config.k, self.config.power, self.train_tags_)
               for start in range(0, len(q), BLOCK)]
        return break_ties_by_popularity(np.vstack(out), self.label_counts_)

    def _state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        return ({"memory": self.memory_, **sparse_to_arrays("train_tags", self.train_tags_)},
                {"base_sha256": self.base_sha256_})

    def _set_state(self, arrays: dict[str, np.ndarray], state: dict[str, Any]) -> None:
        self._load_base()
        if self.base_sha256_ != state["base_sha256"]:
            raise ModelFileError(f"hknn: its base {self.config.base} was retrained or replaced since hknn was "
                                 "trained (its model.json checksum differs); retrain hknn on the current base")
        self.memory_ = arrays["memory"]
        self.train_tags_ = sparse_from_arrays("train_tags", arrays)
