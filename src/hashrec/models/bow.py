"""Bag-of-words building blocks shared by the count-based baselines (nb, lda, ibm1, knn; docs/paper.md §7).

Posts become a sparse document-term count matrix `X` (n_posts, n_words) over a `Vocab` fitted on
the training posts, and their hashtags a 0/1 matrix `Y` (n_posts, n_labels); every baseline is a
few sparse products of these two, never a Python loop over tokens.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from hashrec.models.base import Docs
from hashrec.tokens import Vocab

FIRST_WORD = 2  # Vocab ids 0 and 1 are <pad> and <unk>: out-of-vocabulary tokens are dropped


def training_matrices(
    docs: Docs, label_ids: list[list[int]], n_labels: int, min_count: int
) -> tuple[Vocab, sp.csr_matrix, sp.csr_matrix]:
    """The vocabulary of the training words seen at least `min_count` times, their count matrix
    X (n_posts, n_words) and the 0/1 hashtag matrix Y (n_posts, n_labels): every baseline's start."""
    vocab = Vocab.build(docs, min_count=min_count)
    return vocab, count_matrix(docs, vocab), label_matrix(label_ids, n_labels)


def count_matrix(docs: Docs, vocab: Vocab) -> sp.csr_matrix:
    """(len(docs), len(vocab)) token counts; column j is vocab id j, unknown tokens are not counted.

    >>> v = Vocab.build([["a", "b", "a"]]); count_matrix([["a", "a", "z"]], v).toarray()
    array([[0., 0., 2., 0.]])
    """
    ids = [[i for i in vocab.encode(d) if i >= FIRST_WORD] for d in docs]
    indptr = np.zeros(len(ids) + 1, dtype=np.int64)
    np.cumsum([len(d) for d in ids], out=indptr[1:])
    indices = np.fromiter((i for d in ids for i in d), dtype=np.int64, count=int(indptr[-1]))
    X = sp.csr_matrix((np.ones(len(indices)), indices, indptr), shape=(len(ids), len(vocab)))
    X.sum_duplicates()
    return X


def label_matrix(label_ids: list[list[int]], n_labels: int) -> sp.csr_matrix:
    """(n_posts, n_labels) 0/1 matrix: a post with several hashtags counts toward each."""
    indptr = np.zeros(len(label_ids) + 1, dtype=np.int64)
    np.cumsum([len(t) for t in label_ids], out=indptr[1:])
    indices = np.fromiter((i for t in label_ids for i in t), dtype=np.int64, count=int(indptr[-1]))
    Y = sp.csr_matrix((np.ones(len(indices)), indices, indptr), shape=(len(label_ids), n_labels))
    Y.sum_duplicates()
    Y.data[:] = 1.0
    return Y


def inverse_document_frequency(X: sp.csr_matrix) -> np.ndarray:
    """Smoothed idf, log((1 + n) / (1 + df)) + 1, as in scikit-learn's TfidfTransformer."""
    df = np.bincount(X.indices, minlength=X.shape[1])
    return np.log((1.0 + X.shape[0]) / (1.0 + df)) + 1.0


def tfidf(X: sp.csr_matrix, idf: np.ndarray, norm: str = "l2") -> sp.csr_matrix:
    """Rows of tf x idf scaled to unit `norm` ("l2" for cosine, "l1" for a distribution P(w|d)).

    Empty rows stay zero.
    """
    W = sp.csr_matrix(X.multiply(idf[None, :]))
    sizes = (
        np.sqrt(np.asarray(W.multiply(W).sum(axis=1)).ravel()) if norm == "l2" else np.asarray(W.sum(axis=1)).ravel()
    )
    return sp.csr_matrix(sp.diags(1.0 / np.where(sizes > 0, sizes, 1.0)) @ W)


def break_ties_by_popularity(scores: np.ndarray, label_counts: np.ndarray, eps: float = 1e-9) -> np.ndarray:
    """Add eps x P(t) so that equal scores (a post with no known word: all zero) rank popular tags first.

    eps is far below any real score difference, so the ranking changes only among exact ties.
    """
    return np.asarray(scores, dtype=np.float64) + eps * (label_counts / label_counts.sum())


def sparse_to_arrays(name: str, M: sp.spmatrix) -> dict[str, np.ndarray]:
    """A sparse matrix as plain arrays for safetensors: NAME.indptr, NAME.indices, NAME.data, NAME.shape."""
    M = sp.csr_matrix(M)
    return {
        f"{name}.indptr": M.indptr.astype(np.int64),
        f"{name}.indices": M.indices.astype(np.int64),
        f"{name}.data": M.data,
        f"{name}.shape": np.array(M.shape, dtype=np.int64),
    }


def sparse_from_arrays(name: str, arrays: dict[str, np.ndarray]) -> sp.csr_matrix:
    """The inverse of `sparse_to_arrays`."""
    shape = tuple(int(n) for n in arrays[f"{name}.shape"])
    return sp.csr_matrix((arrays[f"{name}.data"], arrays[f"{name}.indices"], arrays[f"{name}.indptr"]), shape=shape)
