"""k nearest neighbours: the most similar training posts vote for their hashtags.

`knn` compares posts by TF-IDF: a practical anchor beside the paper's baselines (not in Table 1).
On crawls with many near-duplicate posts (weibo-covid19, see ../shared/benchmarks/README.md) it
is a strong and honest yardstick. `hknn` compares them by trained networks' combined layer h (and
by default TF-IDF too): the talk's "network as feature extractor" (docs/paper.md §9) with the simplest
learner on its features.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import numpy as np
import scipy.sparse as sp

from hashrec.config import check
from hashrec.data import Post
from hashrec.errors import ConfigError, ModelFileError
from hashrec.models.base import Dev, Docs, Recommender, Tags, check_posts, fingerprint, model_sha256
from hashrec.models.bow import (break_ties_by_popularity, count_matrix, inverse_document_frequency, label_matrix,
                                sparse_from_arrays, sparse_to_arrays, tfidf)
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


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero): then a dot product is a cosine."""
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


class Words:
    """The training posts' unit TF-IDF vectors: knn's space, one of hknn's."""

    def __init__(self, vocab: Vocab, idf: np.ndarray, train: sp.csr_matrix) -> None:
        self.vocab, self.idf, self.train = vocab, idf, train
        self.train_t = sp.csr_matrix(train.T)  # (n_words, n_train), transposed once, not per batch

    @classmethod
    def fit(cls, docs: Docs, min_count: int = 1) -> "Words":
        vocab = Vocab.build(docs, min_count=min_count)
        X = count_matrix(docs, vocab)
        idf = inverse_document_frequency(X)
        return cls(vocab, idf, tfidf(X, idf))

    def cosines(self, docs: Docs) -> Iterator[np.ndarray]:
        """(B, n_train) cosines to every training post, for BLOCK posts at a time."""
        Q = tfidf(count_matrix(docs, self.vocab), self.idf)
        for start in range(0, Q.shape[0], BLOCK):
            yield (Q[start:start + BLOCK] @ self.train_t).toarray()

    def state(self, prefix: str = "") -> tuple[dict[str, np.ndarray], list[str]]:
        """Arrays for safetensors and the vocabulary for model.json."""
        return {f"{prefix}idf": self.idf, **sparse_to_arrays(f"{prefix}train", self.train)}, self.vocab.itos

    @classmethod
    def from_state(cls, arrays: dict[str, np.ndarray], vocab: list[str], prefix: str = "") -> "Words":
        return cls(Vocab(list(vocab)), arrays[f"{prefix}idf"], sparse_from_arrays(f"{prefix}train", arrays))


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
        self.words_ = Words.fit(docs, self.config.min_count)
        self.train_tags_ = label_matrix(self.label_ids(tags), len(self.labels_))

    def similarities(self, docs: Docs) -> Iterator[np.ndarray]:
        """(B, n_train) similarities to every training post, for BLOCK posts at a time."""
        return self.words_.cosines(docs)

    def _scores(self, docs: Docs) -> np.ndarray:
        out = [vote(sim, self.config.k, self.config.power, self.train_tags_) for sim in self.similarities(docs)]
        return break_ties_by_popularity(np.vstack(out), self.label_counts_)

    def _state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays, vocab = self.words_.state()
        return {**arrays, **sparse_to_arrays("train_tags", self.train_tags_)}, {"vocab": vocab}

    def _set_state(self, arrays: dict[str, np.ndarray], state: dict[str, Any]) -> None:
        self.words_ = Words.from_state(arrays, state["vocab"])
        self.train_tags_ = sparse_from_arrays("train_tags", arrays)


@dataclass(frozen=True)
class NetworkKNNConfig:
    """base: model directory of a network (acnn, cnn, attention) trained on the same posts, or a
    tuple of several. words: TF-IDF's cosine is one more view. The similarity of two posts is the
    mean of the views' cosines. k, power: as knn's. Defaults chosen on weibo's dev posts
    (docs/results/boost.md)."""

    base: str | tuple[str, ...] = ""
    words: bool = True
    k: int = 20
    power: float = 8.0

    def __post_init__(self) -> None:
        check(bool(self.base) and all(self.bases), "needs base=MODEL_DIR, a network trained on the same "
              "posts (hashrec train --model hknn --base runs/acnn --data DIR; --base again for more)")
        check(self.k >= 1, f"k must be >= 1 (neighbours), got {self.k}")
        check(self.power >= 0, f"power must be >= 0, got {self.power}")

    @property
    def bases(self) -> tuple[str, ...]:
        return (self.base,) if isinstance(self.base, str) else self.base


class NetworkKNN(KNN):
    """k nearest neighbours by the networks' h = tanh(M [h_g ; h_l] + b), the layer that feeds the softmax.

    Score: s(t|d) = sum_{j in N_k(d)} max(sim(d, j), 0)^power [t in tags(j)] over the bases' own
    training posts, sim the mean of cos(h_d, h_j) over the base networks and, with `words`, of
    the TF-IDF cosine. Not in the paper: the network's softmax generalises over hashtags, the
    neighbours remember single posts (weibo's near-copies, where TF-IDF kNN beats the network,
    docs/results/acnn.md); h compares posts by what a network learned matters for hashtags.
    It is knn with other `similarities`: the vote (`KNN._scores`) is the same.

    The memory is exactly each base's training posts (checked by their fingerprint, as boost does):
    a post a network learned from has an overfitted h, and boost, which checks each scorer's
    training posts, can then trust that no network under hknn saw its dev posts either.
    """

    name = "hknn"
    Config = NetworkKNNConfig

    def fit(self, train: Sequence[Post], dev: Sequence[Post] | None = None) -> "NetworkKNN":
        train = check_posts(train, "hknn.fit(train)")
        self._load_bases()
        digest = fingerprint([p.text for p in train])
        for path, net in zip(self.config.bases, self.bases_):
            if net.trained_on_.get("train_sha256") != digest:
                raise ConfigError(f"hknn: {path} was not trained on these posts (or, saved by an older hashrec, "
                                  "records no training fingerprint); its memory must be the network's own training "
                                  "split: train hknn on the --data its base was trained on")
        return super().fit(train, dev)

    def _load_bases(self) -> None:
        self.bases_ = [Recommender.load(path) for path in self.config.bases]
        for path, net in zip(self.config.bases, self.bases_):
            if not hasattr(net, "hidden"):
                raise ConfigError(f"hknn: {path} is a {net.name} model; its base must be a network with a "
                                  "combined layer h (acnn, cnn, attention)")
        self.base_sha256_ = [model_sha256(path) for path in self.config.bases]

    def _h(self, docs: Docs) -> list[np.ndarray]:
        """Each base's h of the posts, rows scaled to unit length."""
        return [unit_rows(net.hidden(docs)) for net in self.bases_]

    def _fit(self, docs: Docs, tags: Tags, dev: Dev | None) -> None:
        self.memory_ = self._h(docs)  # per base: (n_train, hidden) unit rows
        self.words_ = Words.fit(docs) if self.config.words else None
        self.train_tags_ = label_matrix(self.label_ids(tags), len(self.labels_))

    def similarities(self, docs: Docs) -> Iterator[np.ndarray]:
        """(B, n_train) means of the views' cosines to every training post, for BLOCK posts at a time."""
        hs = self._h(docs)
        words = self.words_.cosines(docs) if self.words_ else None
        for start in range(0, len(docs), BLOCK):
            views = [h[start:start + BLOCK] @ m.T for h, m in zip(hs, self.memory_)]
            views += [next(words)] if words else []
            yield sum(views) / len(views)

    def _state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays = {f"memory{i}": m for i, m in enumerate(self.memory_)}
        state: dict[str, Any] = {"base_sha256": self.base_sha256_}
        if self.words_:
            words, state["vocab"] = self.words_.state("words.")
            arrays.update(words)
        return {**arrays, **sparse_to_arrays("train_tags", self.train_tags_)}, state

    def _set_state(self, arrays: dict[str, np.ndarray], state: dict[str, Any]) -> None:
        self._load_bases()
        if self.base_sha256_ != list(state["base_sha256"]):
            raise ModelFileError(f"hknn: a base ({', '.join(self.config.bases)}) was retrained or replaced "
                                 "since hknn was trained (its model.json checksum differs); retrain hknn on the "
                                 "current bases")
        self.memory_ = [arrays[f"memory{i}"] for i in range(len(self.bases_))]
        self.words_ = Words.from_state(arrays, state["vocab"], "words.") if self.config.words else None
        self.train_tags_ = sparse_from_arrays("train_tags", arrays)
