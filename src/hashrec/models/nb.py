"""Multinomial Naive Bayes, the first baseline of Gong & Zhang 2016, Table 1 (docs/paper.md §7.1).

Hashtags are the classes and the post's words the features; a post with several hashtags
counts toward each of them (one training pair per hashtag, as for the paper's CNN loss).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.special import logsumexp

from hashrec.config import check
from hashrec.models.base import Dev, Docs, Recommender, Tags
from hashrec.models.bow import count_matrix, training_matrices, sparse_from_arrays, sparse_to_arrays
from hashrec.tokens import Vocab


@dataclass(frozen=True)
class NBConfig:
    """alpha: additive (Lidstone) smoothing of P(w|t); 1.0 is Laplace. With ~20k hashtags most
    have few posts, and Laplace smoothing drowns their counts: on weibo dev (3,000 posts) F1@1 was
    0.061 at alpha 1, 0.162 at 0.1, 0.217 at 0.01, 0.189 at 0.001 (docs/results/baselines.md).
    min_count: words seen fewer times in training are ignored."""

    alpha: float = 0.01
    min_count: int = 1

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
    is non-zero only where w occurred with t.
    """

    name = "nb"
    Config = NBConfig

    def _fit(self, docs: Docs, tags: Tags, dev: Dev | None) -> None:
        self.vocab_, X, Y = training_matrices(docs, self.label_ids(tags), len(self.labels_), self.config.min_count)
        self._set_counts(sp.csr_matrix(Y.T @ X))

    def _set_counts(self, counts: sp.csr_matrix) -> None:
        """Derive the scoring terms from n_tw, the (n_labels, n_words) word counts per hashtag."""
        a, n_words = self.config.alpha, len(self.vocab_) - 2  # <pad>, <unk> are not words
        self.counts_ = counts
        boost = counts.copy()
        boost.data = np.log1p(boost.data / a)
        self.log_boost_t_ = sp.csr_matrix(boost.T)  # (n_words, n_labels), transposed once, not per batch
        self.log_norm_ = np.log(np.asarray(counts.sum(axis=1)).ravel() + a * n_words)
        self.log_prior_ = np.log(self.label_counts_ / self.label_counts_.sum())

    def _scores(self, docs: Docs) -> np.ndarray:
        X = count_matrix(docs, self.vocab_)
        length = np.asarray(X.sum(axis=1))  # (n, 1) known tokens per post
        joint = ((X @ self.log_boost_t_).toarray() + length * np.log(self.config.alpha)
                 - length * self.log_norm_[None, :] + self.log_prior_[None, :])  # (n, n_labels)
        return joint - logsumexp(joint, axis=1, keepdims=True)

    def _state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        return sparse_to_arrays("counts", self.counts_), {"vocab": self.vocab_.itos}

    def _set_state(self, arrays: dict[str, np.ndarray], state: dict[str, Any]) -> None:
        self.vocab_ = Vocab(list(state["vocab"]))
        self._set_counts(sparse_from_arrays("counts", arrays))
