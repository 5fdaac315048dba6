"""stream: kNN over recent posts, mixed with the author's own earlier hashtags and what is trending.

Built for a stream of dated posts that it learns from as they arrive (`update`), and scores as of a
moment (`recommend(..., at=, user=)`): docs/results/stream.md measures it on the reference stream.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hashrec.config import check
from hashrec.data import Post
from hashrec.models.base import Docs, Tags, Times, Users
from hashrec.models.knn import DAY, KNN, KNNConfig


@dataclass(frozen=True)
class StreamConfig(KNNConfig):
    """kNN's settings (here unigrams+bigrams, binary TF, k = 50 votes weighted by exp(-age / tau), tau
    0.25 day, neighbours at most `horizon` days old), and the mix: author weighs the author's own
    hashtags (ACT-R base level with `decay` d), trend weighs the hashtags' shares of the last
    `window` hashtag uses. Chosen on the reference stream's dev part (docs/results/stream.md)."""

    k: int = 50
    power: float = 1.0
    tau: float | None = 0.25
    horizon: int | None = 3
    ngrams: int = 2
    binary: bool = True
    author: float = 0.1
    decay: float = 2.0
    trend: float = 0.1
    window: int = 200

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.author >= 0 and self.trend >= 0, "stream: author and trend weights must be >= 0")
        check(self.decay >= 0, f"stream: decay must be >= 0, got {self.decay}")
        check(self.window >= 1, f"stream: window must be >= 1 hashtag uses, got {self.window}")


class StreamKNN(KNN):
    """The kNN vote's shares, plus the author's and the trend's.

    Score: s(t | d, u, at) = V(t) / sum_t' V(t') + author A_u(t) + trend T(t), where V is knn's vote
    (`KNN`, with recency), A_u(t) = B_u(t) / sum_t' B_u(t') with B_u(t) = sum_j (1 + age_j)^-decay over
    the author's uses j of t before `at` (ACT-R's base-level learning, Kowald et al., WWW 2017; ages
    in whole days, hence the 1 + that keeps a same-day use finite), and T(t) the share of t among
    the last `window` hashtag uses before `at`. Where hashrec departs: Kowald et al. use the
    activation's exponential softmax and seconds; here shares of the sum and days. A post without
    an author gets no author term.
    """

    name = "stream"
    Config = StreamConfig

    def fit(self, train: Sequence[Post], dev: Sequence[Post] | None = None) -> StreamKNN:
        train = list(train)
        super().fit(train)  # without dev: calibration needs the hashtag history remembered below
        self.history_: dict[str, list[tuple[int, float]]] = {}
        self.recent_: deque[tuple[int, float]] = deque(maxlen=self.config.window)
        self._remember([p for p in train if isinstance(p, Post) and p.hashtags])
        self._calibrate(self._dev_set(dev))
        return self

    def _update(self, docs: Docs, tags: Tags, posts: list[Post]) -> None:
        super()._update(docs, tags, posts)
        self._remember(posts)

    def _remember(self, posts: list[Post]) -> None:
        """The posts' hashtag uses, with their times: per author, and the latest `window` of all."""
        for post, ids in zip(posts, self.label_ids([p.hashtags for p in posts])):
            time = np.nan if post.time is None else post.time
            uses = [(i, time) for i in ids]
            self.recent_.extend(uses)
            if post.user is not None:
                self.history_.setdefault(post.user, []).extend(uses)

    def _scores_at(self, docs: Docs, times: Times, users: Users) -> np.ndarray:
        votes = super()._scores_at(docs, times, users)
        scores = votes / np.maximum(votes.sum(axis=1, keepdims=True), 1e-12)
        ats = np.full(len(docs), np.inf) if times is None else times
        if self.config.trend:
            trends = {at: self._trend(at) for at in set(ats.tolist())}
            scores += self.config.trend * np.stack([trends[at] for at in ats.tolist()])
        if self.config.author and users is not None:
            for row, (at, user) in enumerate(zip(ats.tolist(), users)):
                ids, share = self._author(user, at)
                np.add.at(scores[row], ids, self.config.author * share)
        return scores

    def _trend(self, at: float) -> np.ndarray:
        """Each hashtag's share of the last `window` hashtag uses (those after `at` left out)."""
        ids = np.array([i for i, t in self.recent_ if not t > at], dtype=np.int64)
        return np.bincount(ids, minlength=len(self.labels_)) / max(len(self.recent_), 1)

    def _author(self, user: str | None, at: float) -> tuple[np.ndarray, np.ndarray]:
        """The author's hashtags (ids) and their shares of the ACT-R base-level activation as of `at`."""
        uses = self.history_.get(user, []) if user is not None else []
        if not uses:
            return np.zeros(0, np.int64), np.zeros(0)
        ids, when = np.array(uses, dtype=np.float64).T
        age = np.floor((at - np.nan_to_num(when, nan=at)) / DAY) if np.isfinite(at) else np.zeros(len(when))
        keep = age >= 0
        ids, b = ids[keep].astype(np.int64), (1.0 + age[keep]) ** -self.config.decay
        return ids, b / b.sum() if len(b) else b

    def _state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays, state = super()._state()
        authors = list(self.history_)
        uses = [(a, i, t) for a, user in enumerate(authors) for i, t in self.history_[user]]
        history = np.array(uses, dtype=np.float64).reshape(-1, 3)
        recent = np.array(list(self.recent_), dtype=np.float64).reshape(-1, 2)
        return {**arrays, "history": history, "recent": recent}, {**state, "authors": authors}

    def _set_state(self, arrays: dict[str, np.ndarray], state: dict[str, Any]) -> None:
        super()._set_state(arrays, state)
        authors = state["authors"]
        self.history_ = {}
        for a, i, t in arrays["history"].tolist():
            self.history_.setdefault(authors[int(a)], []).append((int(i), t))
        self.recent_ = deque(((int(i), t) for i, t in arrays["recent"].tolist()), maxlen=self.config.window)
