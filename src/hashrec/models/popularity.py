"""The popularity floor: every post gets the most frequent hashtags. Any model must beat it.

With a decay `tau` it is trending: a hashtag's uses count exp(-age / tau), so that on a stream
the hashtags of the last hours lead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hashrec.config import check
from hashrec.data import Post
from hashrec.models.base import Dev, Docs, Recommender, Tags, Times, Users

DAY = 86400.0


@dataclass(frozen=True)
class PopularityConfig:
    """tau: the decay of a use, in days (its weight is exp(-age / tau), age in post time); None
    counts every use alike (plain popularity, the random-split baseline)."""

    tau: float | None = None

    def __post_init__(self) -> None:
        check(self.tau is None or self.tau > 0, f"popularity: tau must be > 0 days (or None), got {self.tau}")


class Popularity(Recommender):
    """Scores a hashtag by its share of the (decayed) hashtag uses, ignoring the text.

    score(t, at) = sum over uses u of t with time(u) <= at of exp(-(at - time(u)) / tau), divided
    by the same sum over all hashtags; tau = None gives plain counts (weight 1). It keeps every use
    (hashtag id, time), so that it scores exactly as of any moment and never counts a later use.
    A post without a time counts as posted at the latest time learned so far.
    """

    name = "popularity"
    Config = PopularityConfig
    learns_online = True
    reads_text = False

    def fit(self, train: Sequence[Post], dev: Sequence[Post] | None = None) -> Popularity:
        train = list(train)
        super().fit(train, dev)
        self._add_uses([p.hashtags for p in train], [p.time for p in train])
        return self

    def _fit(self, docs: Docs, tags: Tags, dev: Dev | None) -> None:
        self.use_labels_, self.use_times_, self.clock_ = np.zeros(0, np.int64), np.zeros(0), 0.0

    def _update(self, docs: Docs, tags: Tags, posts: list[Post]) -> None:
        self._add_uses(tags, [p.time for p in posts])

    def _add_uses(self, tags: Tags, times: list[float | None]) -> None:
        known = [t for t in times if t is not None]
        clock = max([self.clock_, *known]) if known else self.clock_
        ids = self.label_ids(tags)
        self.use_labels_ = np.concatenate([self.use_labels_, np.array([i for s in ids for i in s], np.int64)])
        self.use_times_ = np.concatenate(
            [self.use_times_, np.array([clock if t is None else t for s, t in zip(ids, times) for _ in s], np.float64)]
        )
        self.clock_ = clock
        self.prior_ = self._shares(self.clock_)

    def _shares(self, at: float) -> np.ndarray:
        """Each hashtag's share of the uses at or before `at`, weighted by their decay."""
        keep = self.use_times_ <= at
        weights = np.exp((self.use_times_[keep] - at) / (self.config.tau * DAY)) if self.config.tau else None
        mass = np.bincount(self.use_labels_[keep], weights=weights, minlength=len(self.labels_)).astype(np.float64)
        total = mass.sum()
        return mass / total if total > 0 else mass

    def _scores(self, docs: Docs) -> np.ndarray:
        return np.broadcast_to(self.prior_, (len(docs), len(self.prior_)))

    def _scores_at(self, docs: Docs, times: Times, users: Users) -> np.ndarray:
        if times is None:
            return self._scores(docs)
        moments, rows = np.unique(times, return_inverse=True)
        return np.stack([self._shares(float(at)) for at in moments])[rows]

    def _state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        return {"use_labels": self.use_labels_, "use_times": self.use_times_}, {"clock": self.clock_}

    def _set_state(self, arrays: dict[str, np.ndarray], state: dict[str, Any]) -> None:
        if "use_labels" in arrays:
            self.use_labels_, self.use_times_ = arrays["use_labels"], arrays["use_times"]
        else:  # saved before uses were kept: its counts, all at time 0
            self.use_labels_ = np.repeat(np.arange(len(self.labels_)), self.label_counts_)
            self.use_times_ = np.zeros(len(self.use_labels_))
        self.clock_ = float(state.get("clock", 0.0))
        self.prior_ = self._shares(self.clock_)
