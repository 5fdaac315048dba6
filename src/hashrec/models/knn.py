"""k nearest neighbours: the most similar training posts vote for their hashtags.

`knn` compares posts by TF-IDF: a practical anchor beside the paper's baselines (not in Table 1).
On crawls with many near-duplicate posts (weibo-covid19, see ../shared/benchmarks/README.md) it
is a strong and honest yardstick. `hknn` compares them by trained networks' combined layer h (and
by default TF-IDF too): the talk's "network as feature extractor" (docs/paper.md §9) with the simplest
learner on its features.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from hashrec.config import check
from hashrec.data import Post
from hashrec.errors import ConfigError, ModelFileError
from hashrec.models.base import Dev, Docs, Recommender, Tags, Times, Users, check_posts, fingerprint, model_sha256
from hashrec.models.bow import (
    break_ties_by_popularity,
    count_matrix,
    label_matrix,
    sparse_from_arrays,
    sparse_to_arrays,
)
from hashrec.tokens import Vocab

DENSE = 1 << 23  # similarities held at once: a (DENSE // n_index, n_index) float32 block is 32 MB
DAY = 86400.0


def vote(
    sim: np.ndarray, k: int, power: float, train_tags: sp.csr_matrix, weight: np.ndarray | None = None
) -> np.ndarray:
    """(B, n_labels) votes from similarities `sim` (B, n_train): each row's k best training posts
    vote for their hashtags (`train_tags`, 0/1) with max(sim, 0)^power x weight (recency; 0 for a
    post the row may not see), the k best by that product.

    A neighbour less similar than an unrelated post (cosine below 0: possible between network
    vectors, never between TF-IDF ones) gets no say.

    >>> vote(np.array([[0.9, 0.5, -0.2]]), 2, 1.0, sp.csr_matrix(np.eye(3))).tolist()
    [[0.9, 0.5, 0.0]]
    """
    k = min(k, sim.shape[1])
    score = np.maximum(sim, 0) ** power
    if weight is not None:
        score *= weight
    idx = np.argpartition(-score, k - 1, axis=1)[:, :k]
    votes = np.take_along_axis(score, idx, axis=1)
    rows = np.repeat(np.arange(len(sim)), k)
    W = sp.csr_matrix((votes.ravel().astype(np.float64), (rows, idx.ravel())), shape=sim.shape)
    return (W @ train_tags).toarray()


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero): then a dot product is a cosine."""
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def rows_per_block(n_index: int) -> int:
    """Query posts per dense (rows, n_index) similarity block, so that a block stays near DENSE values."""
    return max(8, min(512, DENSE // max(n_index, 1)))


class Growing:
    """Rows appended at the end, kept as a few blocks merged when a newer block grows as large as the
    one before it (a log-structured list): appending n rows copies O(n log N) values amortised, never
    the whole index per chunk of posts. `join(older, newer)` concatenates two blocks in row order;
    `size(block)` counts its rows."""

    def __init__(self, blocks: list[Any], join: Any, size: Any) -> None:
        self.blocks, self.join, self.size = blocks, join, size

    def append(self, block: Any) -> None:
        self.blocks.append(block)
        while len(self.blocks) > 1 and self.size(self.blocks[-2]) <= 2 * self.size(self.blocks[-1]):
            newer = self.blocks.pop()
            self.blocks[-1] = self.join(self.blocks[-1], newer)

    def __len__(self) -> int:
        return sum(self.size(b) for b in self.blocks)

    def whole(self) -> Any:
        """All rows in one block (for saving, and for the votes' label matrix)."""
        while len(self.blocks) > 1:
            newer = self.blocks.pop()
            self.blocks[-1] = self.join(self.blocks[-1], newer)
        return self.blocks[0]


def join_columns(a: sp.csr_matrix, b: sp.csr_matrix) -> sp.csr_matrix:
    """Two (n_words, n_posts) transposed blocks side by side; the older one knew fewer words."""
    a = a.copy()
    a.resize((b.shape[0], a.shape[1]))
    return sp.hstack([a, b], format="csr")


def join_rows(a: sp.csr_matrix, b: sp.csr_matrix) -> sp.csr_matrix:
    """Two (n_posts, n_labels) blocks one above the other; the older one knew fewer hashtags."""
    a = a.copy()
    a.resize((a.shape[0], b.shape[1]))
    return sp.vstack([a, b], format="csr")


def join_dense(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.vstack([a, b])


def grams(doc: list[str], ngrams: int) -> list[str]:
    """The tokens, and with ngrams=2 also each pair of neighbouring tokens (joined by a space, which no token holds)."""
    return doc + [f"{a} {b}" for a, b in zip(doc, doc[1:])] if ngrams == 2 else doc


@dataclass(frozen=True)
class WordsConfig:
    """How posts become TF-IDF vectors. ngrams: 1 (tokens) or 2 (tokens and bigrams). binary: a word
    counts once per post. learn_words: posts learned after fit add their new words to the vocabulary
    (else only the fit's words are seen). idf: "fit" keeps the fit's IDF (a word new since then gets the
    IDF of a word in no fit post), "running" recounts document frequencies as posts arrive."""

    min_count: int = 1
    ngrams: int = 1
    binary: bool = False
    learn_words: bool = True
    idf: str = "fit"


class Words:
    """The indexed posts' unit TF-IDF vectors: knn's space, one of hknn's. The index grows with `add`."""

    def __init__(
        self,
        config: WordsConfig,
        vocab: Vocab,
        df: np.ndarray,
        fit_df: np.ndarray,
        n_docs: int,
        n_fit: int,
        index: list[sp.csr_matrix],
    ) -> None:
        self.config, self.vocab, self.df, self.fit_df = config, vocab, df, fit_df
        self.n_docs, self.n_fit = n_docs, n_fit  # posts indexed, of which the fit's
        self.index = Growing(index, join_columns, lambda b: b.shape[1])  # blocks of (n_words, n_posts)
        self._cut: tuple[Any, ...] = (None, 0, None)  # (block id, first post, the block from there on)

    @classmethod
    def fit(cls, docs: Docs, config: WordsConfig = WordsConfig()) -> Words:
        docs = [grams(d, config.ngrams) for d in docs]
        vocab = Vocab.build(docs, min_count=config.min_count)
        X = count_matrix(docs, vocab)
        df = np.bincount(X.indices, minlength=len(vocab))
        words = cls(config, vocab, df.copy(), df, len(docs), len(docs), [])  # df grows, the fit's stays
        words.index.append(words._transposed(X))
        return words

    def add(self, docs: Docs) -> None:
        """Index posts that arrived after fit (their new words join the vocabulary if `learn_words`)."""
        docs = [grams(d, self.config.ngrams) for d in docs]
        if self.config.learn_words:
            for d in docs:
                for w in d:
                    if w not in self.vocab.stoi:
                        self.vocab.stoi[w] = len(self.vocab.itos)
                        self.vocab.itos.append(w)
        X = count_matrix(docs, self.vocab)
        if len(self.vocab) > len(self.df):  # room for half as many words again: no copy per chunk
            grow = max(len(self.vocab) - len(self.df), len(self.df) // 2)
            self.df = np.concatenate([self.df, np.zeros(grow, dtype=np.int64)])
        np.add.at(self.df, X.indices, 1)  # a (post, word) pair once: count_matrix summed duplicates
        self.n_docs += len(docs)
        self.index.append(self._transposed(X))
        self._cut = (None, 0, None)  # the blocks changed (and a freed block's id may be reused)

    def idf(self, ids: np.ndarray) -> np.ndarray:
        """Smoothed idf (as `inverse_document_frequency`) of words `ids`, over the fit's posts (a word
        learned since has document frequency 0 there) or over all indexed ones."""
        if self.config.idf == "running":
            return np.log((1.0 + self.n_docs) / (1.0 + self.df[ids])) + 1.0
        known = ids < len(self.fit_df)
        df = np.where(known, self.fit_df[np.where(known, ids, 0)], 0)
        return np.log((1.0 + self.n_fit) / (1.0 + df)) + 1.0

    def vectors(self, docs: Docs) -> sp.csr_matrix:
        """(len(docs), n_words) unit float32 TF-IDF rows of tokenised posts (words not in the vocabulary dropped)."""
        return self._vectors(count_matrix([grams(d, self.config.ngrams) for d in docs], self.vocab))

    def _vectors(self, X: sp.csr_matrix) -> sp.csr_matrix:
        """Unit TF-IDF rows of counts X, in the work of X's entries (never of the whole vocabulary)."""
        X.data = (1.0 if self.config.binary else X.data) * self.idf(X.indices)
        sizes = np.sqrt(np.asarray(X.multiply(X).sum(axis=1)).ravel())
        return sp.csr_matrix(sp.diags(1.0 / np.where(sizes > 0, sizes, 1.0)) @ X, dtype=np.float32)

    def _transposed(self, X: sp.csr_matrix) -> sp.csr_matrix:
        return sp.csr_matrix(self._vectors(X).T)

    def __len__(self) -> int:
        return len(self.index)

    def cosines(self, docs: Docs, first: int = 0) -> Iterator[np.ndarray]:
        """(B, n_index - first) float32 cosines to the indexed posts from the `first`-th on, for
        `rows_per_block` posts at a time."""
        Q = self.vectors(docs)
        blocks = self._blocks_from(first)
        step = rows_per_block(len(self) - first)
        for start in range(0, Q.shape[0], step):
            q = Q[start : start + step]
            yield (
                np.hstack([(q[:, : b.shape[0]] @ b).toarray() for b in blocks])
                if blocks
                else np.zeros((q.shape[0], 0), np.float32)
            )

    def _blocks_from(self, first: int) -> list[sp.csr_matrix]:
        """The index's blocks cut to the posts from the `first`-th on. A cut block is kept until the
        index grows: a chunk of posts scored as of one day cuts at the same post."""
        out, start = [], 0
        for b in self.index.blocks:
            n, cut = b.shape[1], max(first - start, 0)
            if cut == 0:
                out.append(b)
            elif cut < n:
                if self._cut[:2] != (id(b), cut):
                    self._cut = (id(b), cut, b[:, cut:].tocsr())
                out.append(self._cut[2])
            start += n
        return out

    def state(self, prefix: str = "") -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Arrays for safetensors and the vocabulary and counts for model.json."""
        arrays = {
            f"{prefix}df": self.df[: len(self.vocab)],
            f"{prefix}fit_df": self.fit_df,
            **sparse_to_arrays(f"{prefix}index_t", self.index.whole()),
        }
        return arrays, {"vocab": self.vocab.itos, "n_docs": self.n_docs, "n_fit": self.n_fit}

    @classmethod
    def from_state(
        cls, config: WordsConfig, arrays: dict[str, np.ndarray], state: dict[str, Any], prefix: str = ""
    ) -> Words:
        return cls(
            config,
            Vocab(list(state["vocab"])),
            arrays[f"{prefix}df"],
            arrays[f"{prefix}fit_df"],
            int(state["n_docs"]),
            int(state["n_fit"]),
            [sparse_from_arrays(f"{prefix}index_t", arrays)],
        )


def post_times(posts: Sequence[Post]) -> np.ndarray:
    """Each post's time in POSIX seconds, NaN where it has none."""
    return np.array([np.nan if p.time is None else p.time for p in posts], dtype=np.float64)


def recency(times: np.ndarray, at: float, tau: float | None, horizon: int | None = None) -> np.ndarray:
    """exp(-age / tau) per indexed post, the age in whole days before `at`; 0 for a post after `at`
    or older than `horizon` days.

    A post without a time counts as of `at` (weight 1). tau None: no decay, only the cuts.
    """
    age = np.floor((at - np.nan_to_num(times, nan=at)) / DAY)
    w = np.exp(-np.maximum(age, 0) / tau) if tau else np.ones(len(times))
    seen = (age >= 0) & (age <= horizon) if horizon is not None else age >= 0
    return np.where(seen, w, 0.0).astype(np.float32)


@dataclass(frozen=True)
class KNNConfig:
    """k: neighbours that vote. power: a neighbour's vote is cos^power (larger trusts the
    closest more). tau: with it, a vote is also weighted by exp(-age / tau), the neighbour's age in
    whole days (None: no recency, as for random splits). horizon: neighbours at most this many whole
    days old (None: all; on a stream it bounds the posts scanned). min_count, ngrams, binary, learn_words,
    idf: the TF-IDF vectors (`WordsConfig`)."""

    k: int = 20
    power: float = 2.0
    tau: float | None = None
    horizon: int | None = None
    min_count: int = 1
    ngrams: int = 1
    binary: bool = False
    learn_words: bool = True
    idf: str = "fit"

    def __post_init__(self) -> None:
        check(self.k >= 1, f"knn: k must be >= 1 (neighbours), got {self.k}")
        check(self.power >= 0, f"knn: power must be >= 0, got {self.power}")
        check(self.tau is None or self.tau > 0, f"knn: tau must be > 0 days (or None), got {self.tau}")
        check(self.horizon is None or self.horizon >= 0, f"knn: horizon must be >= 0 days, got {self.horizon}")
        check(self.min_count >= 1, f"knn: min_count must be >= 1, got {self.min_count}")
        check(self.ngrams in (1, 2), f"knn: ngrams must be 1 or 2, got {self.ngrams}")
        check(self.idf in ("fit", "running"), f"knn: idf must be 'fit' or 'running', got {self.idf!r}")

    @property
    def words(self) -> WordsConfig:
        return WordsConfig(self.min_count, self.ngrams, self.binary, self.learn_words, self.idf)


class KNN(Recommender):
    """Similarity-weighted vote of the k nearest indexed posts; learns online by indexing new posts.

    Score: s(t|d) = sum_{j in N_k(d)} cos(d, j)^power w(j) [t in tags(j)], with cos over
    L2-normalised TF-IDF vectors, w(j) = exp(-age_j / tau) with tau (else 1) and N_k(d) the k posts
    of largest cos^power w; scored as of a moment, posts after it have w = 0. Ties (no known word)
    fall back to popularity. `update` appends posts to the index (new words, hashtags and times
    included), so a model updated with posts scores as one fitted on them all (IDF aside: "fit"
    keeps the fit's).
    """

    name = "knn"
    Config = KNNConfig
    learns_online = True

    def fit(self, train: Sequence[Post], dev: Sequence[Post] | None = None) -> KNN:
        train = list(train)
        self.times_ = post_times([p for p in train if isinstance(p, Post)])
        return super().fit(train, dev)

    def _fit(self, docs: Docs, tags: Tags, dev: Dev | None) -> None:
        self.words_ = Words.fit(docs, self.config.words)
        self.tags_ = Growing([label_matrix(self.label_ids(tags), len(self.labels_))], join_rows, lambda b: b.shape[0])

    def _update(self, docs: Docs, tags: Tags, posts: list[Post]) -> None:
        self.words_.add(docs)
        self._add_memory(docs, tags, posts)

    def _add_memory(self, docs: Docs, tags: Tags, posts: list[Post]) -> None:
        """What every kNN indexes beside its similarity view: the posts' hashtags and times."""
        self.tags_.append(label_matrix(self.label_ids(tags), len(self.labels_)))
        self.times_ = np.concatenate([self.times_, post_times(posts)])

    def similarities(self, docs: Docs, first: int = 0) -> Iterator[np.ndarray]:
        """(B, n_index - first) similarities to the indexed posts from the `first`-th on, `rows_per_block` at a time."""
        return self.words_.cosines(docs, first)

    def _scores(self, docs: Docs) -> np.ndarray:
        return self._scores_at(docs, None, None)

    @property
    def train_tags_(self) -> sp.csr_matrix:
        """(n_index, n_labels) 0/1 hashtags of the indexed posts."""
        tags = self.tags_.whole()
        if tags.shape[1] < len(self.labels_):  # hashtags learned after the last indexed post's
            tags.resize((tags.shape[0], len(self.labels_)))
        return tags

    def _scores_at(self, docs: Docs, times: Times, users: Users) -> np.ndarray:
        if times is None and (self.config.tau is not None or self.config.horizon is not None):  # as of the newest
            times = np.full(len(docs), np.nanmax(self.times_) if np.isfinite(self.times_).any() else 0.0)
        first = self._first_within_horizon(times)
        train_tags, post_times_ = self.train_tags_[first:], self.times_[first:]
        out, start, weights = [], 0, {}
        for sim in self.similarities(docs, first):
            weight = None
            if times is not None:
                at = times[start : start + len(sim)]
                for t in set(at.tolist()) - set(weights):
                    weights[t] = recency(post_times_, t, self.config.tau, self.config.horizon)
                weight = np.stack([weights[t] for t in at.tolist()])
            out.append(vote(sim, self.config.k, self.config.power, train_tags, weight))
            start += len(sim)
        return break_ties_by_popularity(np.vstack(out), self.label_counts_)

    def _first_within_horizon(self, times: Times) -> int:
        """The first indexed post that may be within `horizon` days of `times`: the index is scanned from
        there on. Only where the indexed posts are in time order (a stream); else 0."""
        if self.config.horizon is None or times is None or not len(self.times_):
            return 0
        if not (np.isfinite(self.times_).all() and (np.diff(self.times_) >= 0).all()):
            return 0
        cutoff = float(np.min(times)) - (self.config.horizon + 1) * DAY  # age in whole days <= horizon
        return int(np.searchsorted(self.times_, cutoff, side="right"))

    def _state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays, state = self.words_.state()
        return {**arrays, **self._memory_arrays()}, state

    def _memory_arrays(self) -> dict[str, np.ndarray]:
        return {"times": self.times_, **sparse_to_arrays("train_tags", self.tags_.whole())}

    def _set_state(self, arrays: dict[str, np.ndarray], state: dict[str, Any]) -> None:
        self.words_ = Words.from_state(self.config.words, arrays, state)
        self._set_memory(arrays)

    def _set_memory(self, arrays: dict[str, np.ndarray]) -> None:
        self.times_ = arrays["times"]
        self.tags_ = Growing([sparse_from_arrays("train_tags", arrays)], join_rows, lambda b: b.shape[0])


@dataclass(frozen=True)
class NetworkKNNConfig:
    """base: model directory of a network (acnn, cnn, attention) trained on the same posts, or a
    tuple of several. words: TF-IDF's cosine is one more view. The similarity of two posts is the
    mean of the views' cosines. k, power, tau, horizon: as knn's. Defaults chosen on weibo's dev posts
    (docs/results/boost.md)."""

    base: str | tuple[str, ...] = ""
    words: bool = True
    k: int = 20
    power: float = 8.0
    tau: float | None = None
    horizon: int | None = None

    def __post_init__(self) -> None:
        check(
            bool(self.base) and all(self.bases),
            "needs base=MODEL_DIR, a network trained on the same "
            "posts (hashrec train --model hknn --base runs/acnn --data DIR; --base again for more)",
        )
        check(self.k >= 1, f"k must be >= 1 (neighbours), got {self.k}")
        check(self.power >= 0, f"power must be >= 0, got {self.power}")
        check(self.tau is None or self.tau > 0, f"tau must be > 0 days (or None), got {self.tau}")
        check(self.horizon is None or self.horizon >= 0, f"horizon must be >= 0 days (or None), got {self.horizon}")

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

    The memory starts as exactly each base's training posts (checked by their fingerprint, as boost
    does): a post a network learned from has an overfitted h, and boost, which checks each scorer's
    training posts, can then trust that no network under hknn saw its dev posts either. `update`
    keeps the networks frozen as encoders and appends the new posts' h (and TF-IDF vectors).
    """

    name = "hknn"
    Config = NetworkKNNConfig

    def fit(self, train: Sequence[Post], dev: Sequence[Post] | None = None) -> NetworkKNN:
        train = check_posts(train, "hknn.fit(train)")
        self._load_bases()
        digest = fingerprint([p.text for p in train])
        for path, net in zip(self.config.bases, self.bases_):
            if net.trained_on_.get("train_sha256") != digest:
                raise ConfigError(
                    f"hknn: {path} was not trained on these posts (or, saved by an older hashrec, "
                    "records no training fingerprint); its memory must be the network's own training "
                    "split: train hknn on the --data its base was trained on"
                )
        return super().fit(train, dev)

    def _load_bases(self) -> None:
        self.bases_ = [Recommender.load(path) for path in self.config.bases]
        for path, net in zip(self.config.bases, self.bases_):
            if not hasattr(net, "hidden"):
                raise ConfigError(
                    f"hknn: {path} is a {net.name} model; its base must be a network with a "
                    "combined layer h (acnn, cnn, attention)"
                )
        self.base_sha256_ = [model_sha256(path) for path in self.config.bases]

    def _h(self, docs: Docs) -> list[np.ndarray]:
        """Each base's h of the posts, rows scaled to unit length."""
        return [unit_rows(net.hidden(docs)) for net in self.bases_]

    def _fit(self, docs: Docs, tags: Tags, dev: Dev | None) -> None:
        self.memory_ = [Growing([h], join_dense, len) for h in self._h(docs)]  # per base: (n_index, hidden)
        self.words_ = Words.fit(docs) if self.config.words else None
        self.tags_ = Growing([label_matrix(self.label_ids(tags), len(self.labels_))], join_rows, lambda b: b.shape[0])

    def _update(self, docs: Docs, tags: Tags, posts: list[Post]) -> None:
        for memory, h in zip(self.memory_, self._h(docs)):
            memory.append(h)
        if self.words_:
            self.words_.add(docs)
        self._add_memory(docs, tags, posts)

    def similarities(self, docs: Docs, first: int = 0) -> Iterator[np.ndarray]:
        """(B, n_index - first) means of the views' cosines to the indexed posts from the `first`-th on."""
        hs = self._h(docs)
        words = self.words_.cosines(docs, first) if self.words_ else None
        step = rows_per_block(len(self.memory_[0]) - first)
        for start in range(0, len(docs), step):
            views = [
                np.hstack([h[start : start + step] @ block.T for block in m.blocks])[:, first:]
                for h, m in zip(hs, self.memory_)
            ]
            views += [next(words)] if words else []
            yield sum(views) / len(views)

    def _state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays = {f"memory{i}": m.whole() for i, m in enumerate(self.memory_)}
        state: dict[str, Any] = {"base_sha256": self.base_sha256_}
        if self.words_:
            words, state["words"] = self.words_.state("words.")
            arrays.update(words)
        return {**arrays, **self._memory_arrays()}, state

    def _set_state(self, arrays: dict[str, np.ndarray], state: dict[str, Any]) -> None:
        self._load_bases()
        if self.base_sha256_ != list(state["base_sha256"]):
            raise ModelFileError(
                f"hknn: a base ({', '.join(self.config.bases)}) was retrained or replaced "
                "since hknn was trained (its model.json checksum differs); retrain hknn on the "
                "current bases"
            )
        self.memory_ = [Growing([arrays[f"memory{i}"]], join_dense, len) for i in range(len(self.bases_))]
        self.words_ = Words.from_state(WordsConfig(), arrays, state["words"], "words.") if self.config.words else None
        self._set_memory(arrays)
