"""The popularity floor: every post gets the most frequent training hashtags. Any model must beat it."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from hashrec.data import Post
from hashrec.models.base import Dev, Docs, Recommender, Tags


@dataclass(frozen=True)
class PopularityConfig:
    pass


class Popularity(Recommender):
    """Scores a hashtag by its share of training hashtag occurrences, ignoring the text."""

    name = "popularity"
    Config = PopularityConfig
    learns_online = True

    def _fit(self, docs: Docs, tags: Tags, dev: Dev | None) -> None:
        self.prior_ = self.label_counts_ / self.label_counts_.sum()

    def _update(self, docs: Docs, tags: Tags, posts: list[Post]) -> None:
        self._fit(docs, tags, None)  # the base has grown label_counts_: the shares follow

    def _scores(self, docs: Docs) -> np.ndarray:
        return np.broadcast_to(self.prior_, (len(docs), len(self.prior_)))

    def _state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        return {}, {}

    def _set_state(self, arrays: dict[str, np.ndarray], state: dict[str, Any]) -> None:
        self.prior_ = self.label_counts_ / self.label_counts_.sum()
