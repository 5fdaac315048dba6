"""Approximate nearest neighbours over sparse unit vectors (TF-IDF rows), for a kNN whose memory grows online.

Exact kNN search multiplies a query by every remembered post (`Words.cosines`): its cost grows
with the index, and a stream's index grows without end. `SparseANN` keeps the cost nearly flat
with an HNSW graph (usearch: maintained, adds and removes vectors online, wheels for
CPython 3.11) over dense sketches of the sparse rows, then re-ranks the graph's candidates by
their exact cosine:

1. sketch: each sparse row x (unit TF-IDF over a vocabulary that only grows) becomes
   z = P x in `dim` dimensions, P the signed feature hashing of the column ids (each word adds
   +-x_w to `hashes` buckets picked by a fixed hash of its id, scaled by 1/sqrt(hashes)); a word
   learned later gets its buckets from the same hash, so old sketches stay valid. E[z.z'] = x.x'.
2. search: the `candidates` (= oversample x k) nearest sketches by cosine, from the HNSW graph;
3. re-rank: the exact cosine of the query with each candidate's sparse row (kept in `RowStore`),
   and the k best.

The sketch's cosine errs by about 1/sqrt(dim) (Johnson-Lindenstrauss), enough to misorder
neighbours whose cosines are close; the exact re-rank of a wider candidate set recovers them.
Recall@k against exact search, and the cost against the index size, are measured by
benchmarks/ann_recall.py (docs/PERFORMANCE-serve.md, the live section).

Keys are insertion positions 0, 1, 2, ...: the kNN's row of the post (its `train_tags_` row).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from usearch.index import Index

MIX = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing: a fixed, well-spread hash of a word's id


@dataclass(frozen=True)
class ANNConfig:
    """dim: sketch dimensions. hashes: buckets per word. oversample: candidates per neighbour
    wanted, re-ranked exactly. connectivity, expansion_add, expansion_search: HNSW's M,
    efConstruction and ef (usearch). dtype: how the graph stores sketches (f32, or f16: half the memory)."""

    dim: int = 256
    hashes: int = 2
    oversample: int = 5
    connectivity: int = 16
    expansion_add: int = 64
    expansion_search: int = 128
    dtype: str = "f32"


def sketch(rows: sp.csr_matrix, dim: int, hashes: int) -> np.ndarray:
    """(n, dim) float32 signed feature hashes of sparse rows: E[sketch(x) . sketch(y)] = x . y."""
    rows = sp.csr_matrix(rows)
    out = np.zeros((rows.shape[0], dim), dtype=np.float32)
    row_of = np.repeat(np.arange(rows.shape[0]), np.diff(rows.indptr))
    ids = rows.indices.astype(np.uint64)
    for h in range(hashes):
        mixed = (ids + np.uint64(h + 1)) * MIX
        bucket = ((mixed >> np.uint64(32)) % np.uint64(dim)).astype(np.int64)
        sign = np.where((mixed >> np.uint64(17)) & np.uint64(1), 1.0, -1.0)
        np.add.at(out, (row_of, bucket), sign * rows.data)
    return out / np.float32(np.sqrt(hashes))


class RowStore:
    """Sparse rows appended in order and taken back by position, in amortised O(1) per row."""

    def __init__(self, n_cols: int = 0) -> None:
        self.indptr = np.zeros(1, dtype=np.int64)
        self.indices = np.zeros(0, dtype=np.int32)
        self.data = np.zeros(0, dtype=np.float32)
        self.nnz = 0
        self.n_cols = n_cols

    def __len__(self) -> int:
        return len(self.indptr) - 1

    def append(self, rows: sp.csr_matrix) -> None:
        rows = sp.csr_matrix(rows)
        need = self.nnz + rows.nnz
        if need > len(self.indices):  # grow by doubling: appends cost O(1) per value, amortised
            size = max(need, 2 * len(self.indices), 1024)
            self.indices = np.resize(self.indices, size)
            self.data = np.resize(self.data, size)
        self.indices[self.nnz:need] = rows.indices
        self.data[self.nnz:need] = rows.data
        self.indptr = np.concatenate([self.indptr, self.nnz + rows.indptr[1:]])
        self.nnz = need
        self.n_cols = max(self.n_cols, rows.shape[1])

    def take(self, positions: np.ndarray) -> sp.csr_matrix:
        """The rows at `positions` (any order, repeats allowed) as a csr matrix."""
        starts, stops = self.indptr[positions], self.indptr[positions + 1]
        lengths = stops - starts
        indptr = np.zeros(len(positions) + 1, dtype=np.int64)
        np.cumsum(lengths, out=indptr[1:])
        flat = np.repeat(starts - indptr[:-1], lengths) + np.arange(indptr[-1])
        return sp.csr_matrix((self.data[flat], self.indices[flat], indptr), shape=(len(positions), self.n_cols))

    def nbytes(self) -> int:
        return self.indptr.nbytes + self.indices.nbytes + self.data.nbytes


class SparseANN:
    """The k nearest rows by cosine among those added, approximately (HNSW on sketches, exact re-rank).

    `add(rows)` appends unit rows (keys continue from `len`), `remove(keys)` forgets some,
    `search(queries, k)` returns keys and cosines, best first, -1 and -inf where fewer than k
    rows are left.
    """

    def __init__(self, config: ANNConfig = ANNConfig()) -> None:
        self.config = config
        self.index = Index(ndim=config.dim, metric="cos", dtype=config.dtype, connectivity=config.connectivity,
                           expansion_add=config.expansion_add, expansion_search=config.expansion_search)
        self.rows = RowStore()

    def __len__(self) -> int:
        """Rows searchable now (added, not removed)."""
        return len(self.index)

    def add(self, rows: sp.csr_matrix) -> np.ndarray:
        """Append unit-length sparse rows; their keys (positions) in order."""
        keys = np.arange(len(self.rows), len(self.rows) + rows.shape[0], dtype=np.uint64)
        self.rows.append(rows)
        vectors = sketch(rows, self.config.dim, self.config.hashes)
        live = np.linalg.norm(vectors, axis=1) > 0  # an empty row (no known word) is no one's neighbour
        if live.any():
            self.index.add(keys[live], vectors[live], threads=1)
        return keys.astype(np.int64)

    def remove(self, keys: np.ndarray) -> None:
        """Forget rows: the graph stops returning them (their sparse rows stay until compaction)."""
        present = [k for k in np.asarray(keys, dtype=np.uint64) if self.index.contains(k)]
        if present:
            self.index.remove(np.array(present, dtype=np.uint64))

    def search(self, queries: sp.csr_matrix, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(n, k) keys and exact cosines of each query's k nearest rows, best first."""
        queries = sp.csr_matrix(queries)
        n = queries.shape[0]
        keys = np.full((n, k), -1, dtype=np.int64)
        sims = np.full((n, k), -np.inf)
        vectors = sketch(queries, self.config.dim, self.config.hashes)
        asked = np.flatnonzero(np.linalg.norm(vectors, axis=1) > 0)
        if len(self.index) == 0 or len(asked) == 0:
            return keys, sims
        wanted = min(k * self.config.oversample, len(self.index))
        found = self.index.search(vectors[asked], wanted, threads=1)
        cand = np.asarray(found.keys, dtype=np.int64).reshape(len(asked), -1)
        valid = np.asarray(found.distances).reshape(len(asked), -1) < np.inf
        cand = np.where(valid & (cand >= 0) & (cand < len(self.rows)), cand, -1)
        exact = self._cosines(queries[asked], cand)
        top = min(k, cand.shape[1])
        best = np.argsort(-exact, axis=1, kind="stable")[:, :top]
        keys[asked, :top] = np.where(np.isfinite(np.take_along_axis(exact, best, 1)),
                                     np.take_along_axis(cand, best, 1), -1)
        sims[asked, :top] = np.take_along_axis(exact, best, 1)
        return keys, sims

    def _cosines(self, queries: sp.csr_matrix, cand: np.ndarray) -> np.ndarray:
        """(n, C) exact cosines of each query with its candidates' rows; -inf for a missing candidate (-1)."""
        n, c = cand.shape
        rows = self.rows.take(np.maximum(cand.ravel(), 0))
        q = queries[np.repeat(np.arange(n), c)]
        q = sp.csr_matrix((q.data, q.indices, q.indptr), shape=(n * c, max(q.shape[1], rows.shape[1])))
        rows = sp.csr_matrix((rows.data, rows.indices, rows.indptr), shape=q.shape)
        dots = np.asarray(rows.multiply(q).sum(axis=1)).reshape(n, c)
        return np.where(cand >= 0, dots, -np.inf)

    def nbytes(self) -> int:
        """Memory of the sparse rows and the graph (usearch's own count)."""
        return self.rows.nbytes() + int(self.index.memory_usage)
