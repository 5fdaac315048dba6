"""Multinomial Naive Bayes, the first baseline of Gong & Zhang 2016, Table 1 (docs/paper.md §7.1).

Hashtags are the classes and the post's words the features; a post with several hashtags
counts toward each of them (one training pair per hashtag, as for the paper's CNN loss).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
from scipy.special import logsumexp

from hashrec.config import check
from hashrec.data import Post
from hashrec.models.base import Dev, Docs, Recommender, Tags
from hashrec.models.bow import count_matrix, label_matrix, sparse_from_arrays, sparse_to_arrays, training_matrices
from hashrec.tokens import Vocab


@dataclass(frozen=True)
class NBConfig:
    """alpha: additive (Lidstone) smoothing of P(w|t); 1.0 is Laplace. With ~20k hashtags most
    have few posts, and Laplace smoothing drowns their counts: on weibo dev (3,000 posts) F1@1 was
    0.061 at alpha 1, 0.162 at 0.1, 0.217 at 0.01, 0.189 at 0.001 (docs/results/baselines.md).
    min_count: words seen fewer times in training are ignored (a word first met by `update` joins at once).
    new_words: `update` adds the words it meets first to the vocabulary; False keeps the fitted one
    (docs/results/stream.md measures what the new words add)."""

    alpha: float = 0.01
    min_count: int = 1
    new_words: bool = True

    def __post_init__(self) -> None:
        check(self.alpha > 0, f"nb: alpha must be > 0 (smoothing), got {self.alpha}")
        check(self.min_count >= 1, f"nb: min_count must be >= 1, got {self.min_count}")


class NaiveBayes(Recommender):
    """Ranks hashtags by the posterior of a multinomial Naive Bayes model.

    Score (docs/paper.md §7.1, "P(t|d) ∝ P(t) prod_w P(w|t)"), normalised over hashtags so that scores
    are comparable across posts::

        log P(t|d) = log P(t) + sum_w n_dw log P(w|t) - log sum_t' (same for t')
        P(t) = c_t / sum_t' c_t'                      (hashtag occurrences)
        P(w|t) = (n_tw + alpha) / (n_t + alpha |V|)   (n_tw: count of w in posts tagged t)

    Computed sparsely: log(n_tw + alpha) = log alpha + log1p(n_tw / alpha), and the log1p term
    is non-zero only where w occurred with t. `update` adds the new posts' counts to n_tw and
    c_t: the same model as a fit on all posts (but for min_count), with the new words in V.
    """

    name = "nb"
    Config = NBConfig
    learns_online = True
    MERGE_SHARE: ClassVar[float] = 0.03  # pending counts join the base at this share of its entries

    def _fit(self, docs: Docs, tags: Tags, dev: Dev | None) -> None:
        self.vocab_, X, Y = training_matrices(docs, self.label_ids(tags), len(self.labels_), self.config.min_count)
        self._set_counts(sp.csr_matrix(Y.T @ X))

    def _update(self, docs: Docs, tags: Tags, posts: list[Post]) -> None:
        """Add the posts' word counts to n_tw; new words join the vocabulary, new hashtags add rows.

        Rebuilding the scoring terms costs a pass over all counts (8M entries after the weibo
        warm-up: seconds), so new counts wait in `pending_` and enter the scores as a correction
        log1p((n + d) / alpha) - log1p(n / alpha) on their own entries; they join the base counts
        once they reach MERGE_SHARE of its entries.
        """
        if self.config.new_words:
            self.vocab_.grow(docs)
        shape = (len(self.labels_), len(self.vocab_))
        Y = label_matrix(self.label_ids(tags), len(self.labels_))
        pending = _grown(self.pending_, shape) + sp.csr_matrix(Y.T @ count_matrix(docs, self.vocab_))
        self.counts_.resize(shape)
        if pending.nnz > self.MERGE_SHARE * self.counts_.nnz:
            self._set_counts(sp.csr_matrix(self.counts_ + pending))
        else:
            self._set_pending(sp.csr_matrix(pending))

    def _set_counts(self, counts: sp.csr_matrix) -> None:
        """Derive the scoring terms from n_tw, the (n_labels, n_words) word counts per hashtag."""
        counts.sum_duplicates()  # canonical: entries sorted by (row, column), as base_keys_ needs
        self.counts_ = counts
        self.base_keys_ = _keys(np.repeat(np.arange(counts.shape[0]), np.diff(counts.indptr)), counts.indices)
        boost = counts.copy()
        boost.data = np.log1p(boost.data / self.config.alpha)
        self.log_boost_t_ = sp.csr_matrix(boost.T)  # (n_words, n_labels), transposed once, not per batch
        self.base_totals_ = np.asarray(counts.sum(axis=1)).ravel()
        self._set_pending(sp.csr_matrix(counts.shape))

    def _set_pending(self, pending: sp.csr_matrix) -> None:
        """The correction of the scoring terms for counts not yet in the base, and the normalisers."""
        a, (n_labels, n_vocab) = self.config.alpha, pending.shape
        self.pending_ = pending
        entries = pending.tocoo()
        # n_tw at the pending entries: a binary search of the sorted base keys (scipy's A[rows, cols]
        # scans whole rows, and a popular hashtag's row holds 100k words)
        keys = _keys(entries.row, entries.col)
        at = np.minimum(np.searchsorted(self.base_keys_, keys), max(len(self.base_keys_) - 1, 0))
        found = self.base_keys_[at] == keys if len(self.base_keys_) else np.zeros(len(keys), bool)
        base = np.where(found, self.counts_.data[at] if len(self.base_keys_) else 0.0, 0.0)
        correction = np.log1p((base + entries.data) / a) - np.log1p(base / a)
        self.correction_t_ = sp.csr_matrix((correction, (entries.col, entries.row)), shape=(n_vocab, n_labels))
        self.log_boost_t_.resize((n_vocab, n_labels))
        totals = _grown_vector(self.base_totals_, n_labels) + np.asarray(pending.sum(axis=1)).ravel()
        self.log_norm_ = np.log(totals + a * (n_vocab - 2))  # <pad>, <unk> are not words
        self.log_prior_ = np.log(self.label_counts_ / self.label_counts_.sum())

    def _scores(self, docs: Docs) -> np.ndarray:
        X = count_matrix(docs, self.vocab_)
        length = np.asarray(X.sum(axis=1))  # (n, 1) known tokens per post
        joint = (
            (X @ self.log_boost_t_).toarray()
            + (X @ self.correction_t_).toarray()
            + length * np.log(self.config.alpha)
            - length * self.log_norm_[None, :]
            + self.log_prior_[None, :]
        )  # (n, n_labels)
        return joint - logsumexp(joint, axis=1, keepdims=True)

    def _state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        return sparse_to_arrays("counts", self.counts_ + self.pending_), {"vocab": self.vocab_.itos}

    def _set_state(self, arrays: dict[str, np.ndarray], state: dict[str, Any]) -> None:
        self.vocab_ = Vocab(list(state["vocab"]))
        self._set_counts(sparse_from_arrays("counts", arrays))


def _grown(matrix: sp.csr_matrix, shape: tuple[int, int]) -> sp.csr_matrix:
    """A copy of `matrix` with more rows and columns (all zero)."""
    grown = matrix.copy()
    grown.resize(shape)
    return grown


def _grown_vector(vector: np.ndarray, n: int) -> np.ndarray:
    return np.concatenate([vector, np.zeros(n - len(vector))])


def _keys(rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """One sortable int64 per (row, column) entry: row-major order, whatever the number of columns."""
    return (rows.astype(np.int64) << 32) | columns.astype(np.int64)
