"""Approximate nearest neighbours over sparse unit vectors (TF-IDF rows), for a kNN whose memory grows online.

Exact kNN search multiplies a query by every remembered post (`Words.cosines`): its cost grows
with the index, and a stream's index grows without end. `SparseANN` bounds the work per query
with two candidate generators whose cost does not grow with the index, then re-ranks the
candidates by their exact cosine:

1. an HNSW graph (usearch: maintained, adds and removes vectors online, wheels for CPython
   3.11) over dense sketches of the sparse rows: each row x (unit TF-IDF over a vocabulary that
   only grows) becomes z = P x in `dim` dimensions, P the signed feature hashing of the column
   ids (each word adds +-x_w to `hashes` buckets picked by a fixed hash of its id, scaled by
   1/sqrt(hashes)); a word learned later gets its buckets from the same hash, so old sketches
   stay valid, and E[z.z'] = x.x'. The graph gives the `oversample` x k nearest sketches;
2. postings: each word keeps its latest `postings` posts with the word's weight in them; the
   query's `rare_words` highest-weighted words vote, each post scoring the dot product over
   those words (exact unless a common word's postings no longer reach back to it), and the
   `oversample` x k best join the candidates. The sketch's cosine errs by about 1/sqrt(dim)
   (Johnson-Lindenstrauss), enough to misorder neighbours whose cosines are close; the posts
   that share the query's words are where its nearest TF-IDF neighbours are;
3. re-rank: the exact cosine of the query with each candidate's sparse row (kept in
   `RowStore`), and the k best.

Recall@k against exact search, and the cost against the index size, are measured by
benchmarks/ann_recall.py (docs/PERFORMANCE-serve.md, the live server's section).

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
    efConstruction and ef (usearch). dtype: how the graph stores sketches (f32, or f16: half the memory).
    rare_words, postings: the posts that share one of the query's `rare_words` highest-weighted
    words, at most the `postings` latest per word, join the candidates (0: the graph's alone)."""

    dim: int = 256
    hashes: int = 2
    oversample: int = 10
    connectivity: int = 16
    expansion_add: int = 64
    expansion_search: int = 128
    dtype: str = "f32"
    rare_words: int = 32
    postings: int = 1024


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
        self.indices[self.nnz : need] = rows.indices
        self.data[self.nnz : need] = rows.data
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
        self.index = Index(
            ndim=config.dim,
            metric="cos",
            dtype=config.dtype,
            connectivity=config.connectivity,
            expansion_add=config.expansion_add,
            expansion_search=config.expansion_search,
        )
        self.rows = RowStore()
        self.alive = np.zeros(0, dtype=bool)
        # word id -> the keys of the latest rows that have it, and the word's weight in each
        self.postings: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def __len__(self) -> int:
        """Rows searchable now (added, not removed)."""
        return len(self.index)

    def add(self, rows: sp.csr_matrix) -> np.ndarray:
        """Append unit-length sparse rows; their keys (positions) in order."""
        keys = np.arange(len(self.rows), len(self.rows) + rows.shape[0], dtype=np.uint64)
        self.rows.append(rows)
        vectors = sketch(rows, self.config.dim, self.config.hashes)
        live = np.linalg.norm(vectors, axis=1) > 0  # an empty row (no known word) is no one's neighbour
        self.alive = np.concatenate([self.alive, live])
        if live.any():
            self.index.add(keys[live], vectors[live], threads=1)
        if self.config.postings:
            self._post(sp.csr_matrix(rows), int(keys[0]) if len(keys) else 0)
        return keys.astype(np.int64)

    def _post(self, rows: sp.csr_matrix, first: int) -> None:
        """Append each row's key and weight to its words' postings, keeping the latest `postings` of each."""
        cap = self.config.postings
        row_of = np.repeat(np.arange(first, first + rows.shape[0]), np.diff(rows.indptr))
        order = np.argsort(rows.indices, kind="stable")  # by word, rows in order within a word
        words, starts = np.unique(rows.indices[order], return_index=True)
        for word, a, b in zip(words.tolist(), starts.tolist(), [*starts[1:].tolist(), len(order)]):
            keys, weights = row_of[order[a:b]], rows.data[order[a:b]].astype(np.float32)
            if word in self.postings:
                old_keys, old_weights = self.postings[word]
                keys, weights = np.concatenate([old_keys, keys]), np.concatenate([old_weights, weights])
            self.postings[word] = (keys[-cap:].copy(), weights[-cap:].copy()) if len(keys) > cap else (keys, weights)

    def remove(self, keys: np.ndarray) -> None:
        """Forget rows: the graph stops returning them (their sparse rows stay until compaction)."""
        keys = np.asarray(keys, dtype=np.int64)
        self.alive[keys] = False
        present = [k for k in keys.astype(np.uint64) if self.index.contains(k)]
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
        if self.config.postings:
            cand = self._with_postings(queries[asked], cand, wanted)
        exact = self._cosines(queries[asked], cand)
        top = min(k, cand.shape[1])
        best = np.argsort(-exact, axis=1, kind="stable")[:, :top]
        keys[asked, :top] = np.where(
            np.isfinite(np.take_along_axis(exact, best, 1)), np.take_along_axis(cand, best, 1), -1
        )
        sims[asked, :top] = np.take_along_axis(exact, best, 1)
        return keys, sims

    def _with_postings(self, queries: sp.csr_matrix, cand: np.ndarray, wanted: int) -> np.ndarray:
        """Each row of `cand` joined by the `wanted` live rows that score best on the postings of its
        query's rarest words (a dot product over those words: exact for a row whose every shared word's
        postings reach back to it), -1 padded."""
        rows = []
        for i in range(queries.shape[0]):
            a, b = queries.indptr[i], queries.indptr[i + 1]
            heavy = np.argsort(-queries.data[a:b], kind="stable")[: self.config.rare_words]
            found = [
                (self.postings[w], q)
                for w, q in zip(queries.indices[a:b][heavy].tolist(), queries.data[a:b][heavy].tolist())
                if w in self.postings
            ]
            joined = cand[i][cand[i] >= 0]
            if found:
                keys = np.concatenate([k for (k, _), _ in found])
                votes = np.concatenate([v * q for (_, v), q in found])
                uniq, where = np.unique(keys, return_inverse=True)
                score = np.bincount(where, weights=votes) * self.alive[uniq]
                best = uniq[np.argpartition(-score, min(wanted, len(uniq)) - 1)[:wanted]]
                joined = np.union1d(joined, best[self.alive[best]])
            rows.append(joined)
        out = np.full((len(rows), max(len(r) for r in rows)), -1, dtype=np.int64)
        for i, r in enumerate(rows):
            out[i, : len(r)] = r
        return out

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
        """Memory of the sparse rows, the graph (usearch's own count) and the postings."""
        postings = sum(k.nbytes + w.nbytes for k, w in self.postings.values())
        return self.rows.nbytes() + int(self.index.memory_usage) + postings
