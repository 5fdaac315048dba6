"""LDA hashtag recommendation (Krestel, Fankhauser & Nejdl, RecSys 2009), Table 1 baseline "LDA".

docs/paper.md §7.2: LDA over posts whose tokens are their words plus their hashtags (a hashtag is a
token of its own, distinct from any word); a new post's topic mix theta is inferred from its
words alone and hashtags are scored by p(h|d) = sum_z theta_dz phi_zh.

Training is collapsed Gibbs sampling (Griffiths & Steyvers 2004; Krestel et al. also sample),
compiled with numba: gensim's online variational LDA (a Python loop per post) is too slow for
100k posts on two cores (docs/results/baselines.md). A new post's theta comes from the variational
E-step with the topics phi held fixed (fold-in), a deterministic batch computation, so a saved
model scores exactly as before it was saved.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
import scipy.sparse as sp
from scipy.special import psi

from hashrec.config import check
from hashrec.models.base import Dev, Docs, Recommender, Tags
from hashrec.models.bow import break_ties_by_popularity, count_matrix, training_matrices
from hashrec.tokens import Vocab


@dataclass(frozen=True)
class LDAConfig:
    """topics: K. alpha: symmetric Dirichlet prior on a post's topic mix (short posts favour a
    small value); eta: prior on each topic's token distribution. sweeps: Gibbs sweeps over all
    training tokens (phi is read from the last); iterations: fold-in iterations per new post.
    hashtag_weight: how many tokens one hashtag counts as, so that 1-2 hashtags are not drowned
    by ~35 words (1 = Krestel et al.'s plain reading). min_count: rarer words are dropped."""

    topics: int = 100
    alpha: float = 0.1
    eta: float = 0.01
    sweeps: int = 100
    iterations: int = 50
    hashtag_weight: int = 1
    min_count: int = 2
    seed: int = 0

    def __post_init__(self) -> None:
        check(self.topics >= 2, f"lda: topics must be >= 2, got {self.topics}")
        check(self.alpha > 0 and self.eta > 0, f"lda: alpha and eta must be > 0, got {self.alpha}, {self.eta}")
        check(self.sweeps >= 1 and self.iterations >= 1, "lda: sweeps and iterations must be >= 1")
        check(self.hashtag_weight >= 1, f"lda: hashtag_weight must be >= 1, got {self.hashtag_weight}")
        check(self.min_count >= 1, f"lda: min_count must be >= 1, got {self.min_count}")


@numba.njit(cache=True)
def gibbs_sweep(
    doc: np.ndarray,
    token: np.ndarray,
    z: np.ndarray,
    n_dz: np.ndarray,
    n_wz: np.ndarray,
    n_z: np.ndarray,
    alpha: float,
    eta: float,
    cum: np.ndarray,
) -> None:
    """One collapsed Gibbs sweep, in place: p(z_i = k | rest) ∝ (n_dk + alpha)(n_wk + eta) / (n_k + W eta).

    doc, token, z: per token its post, its id and its current topic; n_dz (D, K), n_wz (W, K),
    n_z (K,): the counts of the current assignment (word-major n_wz: the loop over topics reads
    contiguous memory); cum (K,): scratch. Draws from numba's RNG (seed it with np.random.seed
    inside njit, as `gibbs` does). The one LDA sampler: translation.py's TopicWA uses it too.
    """
    n_topics, w_eta = n_z.shape[0], n_wz.shape[0] * eta
    for i in range(token.shape[0]):
        d, w, k = doc[i], token[i], z[i]
        n_dz[d, k] -= 1
        n_wz[w, k] -= 1
        n_z[k] -= 1
        total = 0.0
        for j in range(n_topics):
            total += (n_dz[d, j] + alpha) * (n_wz[w, j] + eta) / (n_z[j] + w_eta)
            cum[j] = total
        u = np.random.random() * total
        k = 0
        while k < n_topics - 1 and cum[k] < u:
            k += 1
        z[i] = k
        n_dz[d, k] += 1
        n_wz[w, k] += 1
        n_z[k] += 1


@numba.njit(cache=True)
def gibbs(
    doc: np.ndarray,
    token: np.ndarray,
    z: np.ndarray,
    n_dz: np.ndarray,
    n_wz: np.ndarray,
    n_z: np.ndarray,
    alpha: float,
    eta: float,
    sweeps: int,
    seed: int,
) -> None:
    """`sweeps` sweeps of `gibbs_sweep` from numba's RNG seeded with `seed`, in place.

    tokens ids are words, then hashtags (see LDA).
    """
    np.random.seed(seed)
    cum = np.empty(n_z.shape[0])
    for _ in range(sweeps):
        gibbs_sweep(doc, token, z, n_dz, n_wz, n_z, alpha, eta, cum)


def sample_topics(M: sp.csr_matrix, topics: int, alpha: float, eta: float, sweeps: int, seed: int) -> np.ndarray:
    """phi (K, n_tokens): topics fitted by Gibbs sampling to the count matrix M (posts x token ids)."""
    M = sp.csr_matrix(M)
    counts = M.data.astype(np.int64)
    doc = np.repeat(np.repeat(np.arange(M.shape[0]), np.diff(M.indptr)), counts)
    token = np.repeat(M.indices.astype(np.int64), counts)
    z = np.random.default_rng(seed).integers(topics, size=len(token))
    n_dz = np.zeros((M.shape[0], topics), dtype=np.int64)
    n_wz = np.zeros((M.shape[1], topics), dtype=np.int64)
    np.add.at(n_dz, (doc, z), 1)
    np.add.at(n_wz, (token, z), 1)
    n_z = np.bincount(z, minlength=topics).astype(np.int64)
    gibbs(doc, token, z, n_dz, n_wz, n_z, alpha, eta, sweeps, seed)
    return ((n_wz + eta) / (n_z + M.shape[1] * eta)).T


def infer_topics(X: sp.csr_matrix, phi: np.ndarray, alpha: float, iterations: int, tol: float = 1e-3) -> np.ndarray:
    """theta (n_posts, K) of new posts with the topics fixed: the variational E-step of Blei et al. 2003.

    gamma_dz = alpha + e_dz sum_w n_dw phi_zw / sum_z' e_dz' phi_z'w, e_dz = exp(E[log theta_dz]),
    iterated to a mean change below `tol`. `phi` is (K, n_words), the words' part of the topics;
    a post with no known word gets a uniform theta.
    """
    X = sp.csr_matrix(X)
    rows = np.repeat(np.arange(X.shape[0]), np.diff(X.indptr))
    phi_t = phi.T  # (n_words, K)
    gamma = np.full((X.shape[0], phi.shape[0]), alpha) + np.asarray(X.sum(axis=1)) / phi.shape[0]
    for _ in range(iterations):
        e = np.exp(psi(gamma) - psi(gamma.sum(axis=1, keepdims=True)))  # (n, K)
        norm = np.einsum("ik,ik->i", e[rows], phi_t[X.indices]) + 1e-100  # (nnz,)
        weighted = sp.csr_matrix((X.data / norm, X.indices, X.indptr), shape=X.shape)
        new = alpha + e * (weighted @ phi_t)
        change = np.abs(new - gamma).mean()
        gamma = new
        if change < tol:
            break
    return gamma / gamma.sum(axis=1, keepdims=True)


class LDA(Recommender):
    """Score: p(h|d) = sum_z theta_dz phi_zh (Krestel et al. 2009), theta inferred from words.

    phi_zh is the topic's probability of the hashtag token among all its tokens (words and
    hashtags), as in Krestel et al. `phi_words_` is (K, n_words), `phi_tags_` (K, n_labels).
    """

    name = "lda"
    Config = LDAConfig

    def _fit(self, docs: Docs, tags: Tags, dev: Dev | None) -> None:
        cfg = self.config
        self.vocab_, X, Y = training_matrices(docs, self.label_ids(tags), len(self.labels_), cfg.min_count)
        Y = Y * cfg.hashtag_weight
        phi = sample_topics(sp.hstack([X, Y], format="csr"), cfg.topics, cfg.alpha, cfg.eta, cfg.sweeps, cfg.seed)
        self.phi_words_, self.phi_tags_ = phi[:, : X.shape[1]], phi[:, X.shape[1] :]

    def _scores(self, docs: Docs) -> np.ndarray:
        theta = infer_topics(
            count_matrix(docs, self.vocab_), self.phi_words_, self.config.alpha, self.config.iterations
        )
        return break_ties_by_popularity(theta @ self.phi_tags_, self.label_counts_)

    def _state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        return {"phi_words": self.phi_words_, "phi_tags": self.phi_tags_}, {"vocab": self.vocab_.itos}

    def _set_state(self, arrays: dict[str, np.ndarray], state: dict[str, Any]) -> None:
        self.vocab_ = Vocab(list(state["vocab"]))
        self.phi_words_ = arrays["phi_words"]
        self.phi_tags_ = arrays["phi_tags"]
