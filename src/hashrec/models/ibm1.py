"""The word trigger method (Liu, Chen & Sun, EMNLP 2011): IBM Model 1 between words and hashtags.

Gong & Zhang 2016, Table 1 baseline "IBM1" (docs/paper.md §7.3). A post and its hashtags are treated
as a parallel sentence pair; IBM Model 1 is trained with EM in both directions and the two
word-to-hashtag tables are combined by a weighted harmonic mean.

Departures, both documented: no NULL source word (a hashtag always aligns to some word of
its post, as in Liu et al.'s description-tag pairs), and no length balancing by resampling.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from hashrec.config import check
from hashrec.models.base import Dev, Docs, Recommender, Tags
from hashrec.models.bow import (
    break_ties_by_popularity,
    count_matrix,
    inverse_document_frequency,
    sparse_from_arrays,
    sparse_to_arrays,
    tfidf,
    training_matrices,
)
from hashrec.tokens import Vocab


@dataclass(frozen=True)
class IBM1Config:
    """iterations: EM iterations per direction; more fit the training co-occurrences harder
    and generalise worse (docs/results/baselines.md). lam: weight of the
    words->hashtags direction in the harmonic mean (Liu et al.: 0.5). min_count: rarer training
    words are ignored."""

    iterations: int = 5
    lam: float = 0.5  # Liu et al. 2011
    min_count: int = 2

    def __post_init__(self) -> None:
        check(self.iterations >= 1, f"ibm1: iterations must be >= 1, got {self.iterations}")
        check(0 < self.lam < 1, f"ibm1: lam must be in (0, 1), got {self.lam}")
        check(self.min_count >= 1, f"ibm1: min_count must be >= 1, got {self.min_count}")


@dataclass(frozen=True)
class Links:
    """Every (post, word, hashtag) co-occurrence, the unit of IBM1's E-step.

    n: count of the word in the post; pair: index of (word, hashtag) among the distinct pairs
    `pair_word`, `pair_tag`; doc_tag / doc_word: index of (post, hashtag) / (post, word).
    """

    n: np.ndarray
    pair: np.ndarray
    doc_tag: np.ndarray
    doc_word: np.ndarray
    pair_word: np.ndarray
    pair_tag: np.ndarray


def links(X: sp.csr_matrix, Y: sp.csr_matrix) -> Links:
    """All word x hashtag combinations within each post, vectorised (no loop over posts)."""
    X, Y = sp.csr_matrix(X), sp.csr_matrix(Y)
    n_words, n_tags = np.diff(X.indptr), np.diff(Y.indptr)
    word_doc = np.repeat(np.arange(X.shape[0]), n_words)  # post of each stored (post, word)
    reps = n_tags[word_doc]  # hashtags of that post
    word_entry = np.repeat(np.arange(X.nnz), reps)  # (post, word) entry of each link
    first = np.cumsum(reps) - reps
    tag_entry = Y.indptr[word_doc[word_entry]] + np.arange(len(word_entry)) - np.repeat(first, reps)
    word, tag = X.indices[word_entry].astype(np.int64), Y.indices[tag_entry].astype(np.int64)
    keys, pair = np.unique(word * Y.shape[1] + tag, return_inverse=True)
    return Links(
        n=X.data[word_entry],
        pair=pair,
        doc_tag=tag_entry,
        doc_word=word_entry,
        pair_word=keys // Y.shape[1],
        pair_tag=keys % Y.shape[1],
    )


def em(lk: Links, iterations: int, source_is_word: bool) -> np.ndarray:
    """Expected alignment counts per (word, hashtag) pair after IBM Model 1 EM.

    words -> hashtags (`source_is_word`): each hashtag of a post aligns to one of its words,
    P(align w | t, d) = n_dw p(t|w) / sum_w' n_dw' p(t|w'), and p(t|w) = c(w,t) / sum_t c(w,t).
    hashtags -> words: each word token aligns to one of the post's hashtags,
    P(align t | w, d) = p(w|t) / sum_t' p(w|t'), weighted by n_dw, and p(w|t) = c(w,t) / sum_w c(w,t).
    Start: uniform table.
    """
    target, source = (lk.doc_tag, lk.pair_word) if source_is_word else (lk.doc_word, lk.pair_tag)
    weight = lk.n if source_is_word else np.ones_like(lk.n)  # n_dw in the alignment prior, or per token
    table = np.ones(len(lk.pair_word))
    for _ in range(iterations):
        p = weight * table[lk.pair]
        posterior = p / np.bincount(target, p)[target]
        counts = np.bincount(lk.pair, posterior * (1.0 if source_is_word else lk.n), minlength=len(table))
        table = counts / np.bincount(source, counts)[source]
    return counts


def per_word(counts: np.ndarray, word: np.ndarray) -> np.ndarray:
    """Counts over (word, hashtag) pairs -> P(t|w): normalised over the hashtags of each word."""
    return counts / np.bincount(word, counts)[word]


class IBM1(Recommender):
    """Word trigger method: P(t|d) = sum_w P(t|w) P(w|d) (Liu et al. 2011; docs/paper.md §7.3).

    P(t|w) = 1 / (lam / P_d2t(t|w) + (1 - lam) / P_t2d(t|w)), renormalised over t, where
    P_d2t is the words->hashtags table and P_t2d the hashtags->words model's expected
    alignment counts c(w,t) normalised over t (our reading: both must be distributions over
    hashtags to be averaged). P(w|d) is the post's TF-IDF vector scaled to sum to one.
    `table_` is (n_words, n_labels) sparse, each row of a seen word summing to one.
    """

    name = "ibm1"
    Config = IBM1Config

    def _fit(self, docs: Docs, tags: Tags, dev: Dev | None) -> None:
        self.vocab_, X, Y = training_matrices(docs, self.label_ids(tags), len(self.labels_), self.config.min_count)
        self.idf_ = inverse_document_frequency(X)
        lk = links(X, Y)
        d2t = per_word(em(lk, self.config.iterations, source_is_word=True), lk.pair_word)
        t2d = per_word(em(lk, self.config.iterations, source_is_word=False), lk.pair_word)
        lam = self.config.lam
        harmonic = per_word(1.0 / (lam / d2t + (1 - lam) / t2d), lk.pair_word)
        self.table_ = sp.csr_matrix((harmonic, (lk.pair_word, lk.pair_tag)), shape=(X.shape[1], Y.shape[1]))

    def _scores(self, docs: Docs) -> np.ndarray:
        p_w_d = tfidf(count_matrix(docs, self.vocab_), self.idf_, norm="l1")
        return break_ties_by_popularity((p_w_d @ self.table_).toarray(), self.label_counts_)

    def _state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        return {"idf": self.idf_, **sparse_to_arrays("table", self.table_)}, {"vocab": self.vocab_.itos}

    def _set_state(self, arrays: dict[str, np.ndarray], state: dict[str, Any]) -> None:
        self.vocab_ = Vocab(list(state["vocab"]))
        self.idf_ = arrays["idf"]
        self.table_ = sparse_from_arrays("table", arrays)
