"""The one interface every recommender follows, neural or classical (scikit-learn's estimator idea).

A model subclasses `Recommender`, declares its hyperparameters as a frozen `Config` dataclass and
writes four methods: `_fit(docs, tags, dev)`, `_scores(docs) -> (n_posts, n_labels)`, and
`_state()` / `_set_state()` for saving. A model that learns as posts arrive sets `learns_online`
and writes `_update(docs, tags, posts)`; one that scores as of a moment or for an author writes
`_scores_at(docs, times, users)`. The base owns validation, tokenisation, the label set (which
`update` grows), top-k ranking, the fitted check, and the safe on-disk format (hashrec.store).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from hashrec import __version__
from hashrec.calibration import RANKS, Calibration, Suggestion, suggestions
from hashrec.config import make_config
from hashrec.data import Post, parse_time
from hashrec.errors import ConfigError, DataError, ModelFileError, NotFittedError
from hashrec.metrics import Scores, evaluate_ranked
from hashrec.store import MODEL_JSON, WEIGHTS, load_model_dir, save_model_dir
from hashrec.tokens import tokenize_many

Docs = list[list[str]]
Tags = list[tuple[str, ...]]
Ranking = list[tuple[str, float]]
Times = np.ndarray | None  # one POSIX second per post: score as of then; None: after every post learned
Users = list[str | None] | None  # one author per post
CHUNK = 512  # posts scored at once: bounds the (chunk, n_labels) score matrix


@dataclass(frozen=True)
class Dev:
    """Held-out posts for model selection, already tokenised."""

    docs: Docs
    tags: Tags


def check_posts(posts: Sequence[Post], what: str) -> list[Post]:
    posts = list(posts)
    if not posts:
        raise DataError(f"{what}: no posts; check the split file")
    for i, p in enumerate(posts):
        if not isinstance(p, Post):
            raise DataError(f"{what}: item {i} is {type(p).__name__}, expected hashrec.data.Post")
    if not any(p.hashtags for p in posts):
        raise DataError(
            f"{what}: not a single post has a hashtag; nothing to learn. Check the "
            "hashtag style (--hashtag-style) or the hashtags field"
        )
    return posts


def fingerprint(texts: Sequence[str]) -> str:
    """SHA-256 of a set of texts, independent of their order: names the exact posts a model learned from.

    Stored as `trained_on_["train_sha256"]`; ranking.Boost checks it to prove it never learns from
    a base model's own training posts.
    """
    digests = sorted(hashlib.sha256(t.encode("utf-8", "surrogatepass")).digest() for t in texts)
    return hashlib.sha256(b"".join(digests)).hexdigest()


def model_sha256(path: str | Path) -> str:
    """SHA-256 of a saved model's model.json: its config and its weights' checksum together.

    The weights alone do not name a model: NB stores counts and applies its smoothing alpha when
    scoring, so two NB models of different alpha have the same weights file (a cache keyed by the
    weights served one's top lists for the other).
    """
    try:
        text = (Path(path) / MODEL_JSON).read_bytes()
        json.loads(text)["sha256"][WEIGHTS]  # a model.json that records its weights' checksum, or the error below
        return hashlib.sha256(text).hexdigest()
    except (OSError, ValueError, KeyError, TypeError):
        raise ModelFileError(
            f"{path}: not a readable hashrec model directory; boost and hknn reference "
            "their base (and scorers) by path, train or copy them there first"
        ) from None


def check_texts(texts: str | Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        return [texts]
    texts = list(texts)
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise DataError(f"text {i} is {type(t).__name__}, expected str")
    return texts


def per_text_times(at: Any, n: int) -> Times:
    """`at` (None, one time, or one per text; POSIX seconds or ISO 8601) as one POSIX second per text."""
    if at is None:
        return None
    values = list(at) if isinstance(at, (list, tuple, np.ndarray)) else [at] * n
    if len(values) != n:
        raise ConfigError(f"at: {len(values)} times for {n} texts; give one time, or one per text")
    return np.array([parse_time(v, f"at[{i}]") for i, v in enumerate(values)], dtype=np.float64)


def per_text_users(user: Any, n: int) -> Users:
    """`user` (None, one id, or one per text) as one id (or None) per text."""
    if user is None:
        return None
    values = list(user) if isinstance(user, (list, tuple)) else [user] * n
    if len(values) != n:
        raise ConfigError(f"user: {len(values)} users for {n} texts; give one user, or one per text")
    return [None if u is None else str(u) for u in values]


def check_k(k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ConfigError(f"k must be a positive integer (how many hashtags to return), got {k!r}")
    return k


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and values of the k best columns of each row, best first."""
    k = min(k, scores.shape[1])
    idx = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    vals = np.take_along_axis(scores, idx, axis=1)
    order = np.argsort(-vals, axis=1, kind="stable")
    return np.take_along_axis(idx, order, axis=1), np.take_along_axis(vals, order, axis=1)


class Recommender:
    """Base of all recommenders: `fit(posts) -> self`, `recommend(texts, k)`, `save(dir)`, `load(dir)`.

    Learned state ends in `_` and is set only by `fit` (or `load`). `labels_` are the training
    hashtags, most frequent first; `_scores` returns one column per label.
    """

    name: ClassVar[str] = "base"
    Config: ClassVar[type] = type(None)
    supports_explain: ClassVar[bool] = False
    learns_online: ClassVar[bool] = False  # `update` learns from new posts without a refit
    reads_text: ClassVar[bool] = True  # False: `fit` and `update` pass no tokens (popularity ignores the text)

    def __init__(self, **params: Any) -> None:
        self.config = make_config(self.Config, params, where=self.name)
        self.metrics_: dict[str, Any] = {}
        self.trained_on_: dict[str, Any] = {}
        self.calibration_: Calibration | None = None  # set by fit with dev posts (or load): see suggest

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.get_params().items())})"

    def get_params(self) -> dict[str, Any]:
        return dataclasses.asdict(self.config)

    # ------------------------------------------------------------------ training

    def fit(self, train: Sequence[Post], dev: Sequence[Post] | None = None) -> Recommender:
        """Learn from training posts; `dev` (optional) is used for model selection only."""
        train = check_posts(train, f"{self.name}.fit(train)")
        docs = self._tokens([p.text for p in train], progress=len(train) > 20000)
        tags = [p.hashtags for p in train]
        counts: dict[str, int] = {}
        for ts in tags:
            for t in ts:
                counts[t] = counts.get(t, 0) + 1
        self.labels_ = sorted(counts, key=lambda t: -counts[t])  # stable: ties keep first appearance
        self.label_index_ = {t: i for i, t in enumerate(self.labels_)}
        self.label_counts_ = np.array([counts[t] for t in self.labels_], dtype=np.int64)
        dev_set = self._dev_set(dev)
        self._fit(docs, tags, dev_set)
        self._calibrate(dev_set)
        self.trained_on_ = {
            "n_train": len(train),
            "n_labels": len(self.labels_),
            **self.trained_on_,
            "train_sha256": fingerprint([p.text for p in train]),
        }
        return self

    def update(self, posts: Sequence[Post]) -> Recommender:
        """Learn from posts that arrived after `fit` or the last `update`, given in stream order.

        Hashtags never seen before join `labels_` at the end (existing ids never change) and
        `label_counts_` grows; the model's `_update` learns the rest. Posts without a hashtag teach
        nothing and are skipped. A static model refuses: refit it on all posts instead.
        """
        self._check_fitted()
        if not self.learns_online:
            raise ConfigError(
                f"{self.name} is static: it cannot learn after fit; refit it on all posts "
                "(hashrec train), or pick a model that learns online (popularity, nb, knn, hknn, stream)"
            )
        for i, p in enumerate(posts or []):
            if not isinstance(p, Post):
                raise DataError(f"{self.name}.update: item {i} is {type(p).__name__}, expected hashrec.data.Post")
        posts = [p for p in posts if p.hashtags] if posts else []
        if posts:
            docs = self._tokens([p.text for p in posts])
            tags = [p.hashtags for p in posts]
            self._grow_labels(tags)
            self._update(docs, tags, posts)
            self.trained_on_["n_updates"] = self.trained_on_.get("n_updates", 0) + len(posts)
        return self

    def _tokens(self, texts: list[str], progress: bool = False) -> Docs:
        """The posts' tokens for `_fit` and `_update`; empty for a model that does not read the text."""
        return tokenize_many(texts, progress=progress) if self.reads_text else [[] for _ in texts]

    def _grow_labels(self, tags: Tags) -> None:
        """Append unseen hashtags to `labels_` and count every use in `label_counts_`."""
        for ts in tags:
            for t in ts:
                if t not in self.label_index_:
                    self.label_index_[t] = len(self.labels_)
                    self.labels_.append(t)
        counts = np.zeros(len(self.labels_), dtype=np.int64)
        counts[: len(self.label_counts_)] = self.label_counts_
        np.add.at(counts, [i for ids in self.label_ids(tags) for i in ids], 1)
        self.label_counts_ = counts

    def _update(self, docs: Docs, tags: Tags, posts: list[Post]) -> None:
        raise NotImplementedError

    def label_ids(self, tags: Tags) -> list[list[int]]:
        """Training-label ids of each post's hashtags (unseen hashtags dropped)."""
        return [[self.label_index_[t] for t in ts if t in self.label_index_] for ts in tags]

    def _fit(self, docs: Docs, tags: Tags, dev: Dev | None) -> None:
        raise NotImplementedError

    def _scores(self, docs: Docs) -> np.ndarray:
        """(len(docs), len(labels_)) scores, higher is better."""
        raise NotImplementedError

    # ------------------------------------------------------------------ inference

    def _check_fitted(self) -> None:
        if not hasattr(self, "labels_"):
            raise NotFittedError(
                f"This {type(self).__name__} instance is not fitted yet. Call 'fit' "
                "with appropriate arguments before using this recommender."
            )

    def _scores_at(self, docs: Docs, times: Times, users: Users) -> np.ndarray:
        """Scores as of `times` for authors `users`; a model blind to time and author ignores both."""
        return self._scores(docs)

    def rank_docs(self, docs: Docs, k: int, times: Times = None, users: Users = None) -> list[Ranking]:
        """Top-k (hashtag, score) per tokenised post, best first (as of `times`, for `users`, if given)."""
        self._check_fitted()
        if not docs:
            return []
        if times is None and users is None:
            idx, vals = self._top_k(docs, k)
        else:
            idx, vals = self._chunked_top_k(
                lambda a, b: self._scores_at(
                    docs[a:b], None if times is None else times[a:b], None if users is None else users[a:b]
                ),
                len(docs),
                k,
            )
        labels = self.labels_  # .tolist(): Python ints and floats, not a numpy scalar per element
        return [[(labels[i], v) for i, v in zip(row_i, row_v)] for row_i, row_v in zip(idx.tolist(), vals.tolist())]

    def _top_k(self, docs: Docs, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Label ids and scores (len(docs), k) of the best labels of each post, best first.

        From `_scores`, CHUNK posts at a time; a model with a cheaper way (the network's top-k on
        its logits) overrides it.
        """
        return self._chunked_top_k(lambda a, b: self._scores(docs[a:b]), len(docs), k)

    @staticmethod
    def _chunked_top_k(scores: Any, n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        """`top_k` of `scores(start, stop)`, CHUNK posts at a time."""
        parts = [top_k(np.asarray(scores(i, min(i + CHUNK, n)), dtype=np.float64), k) for i in range(0, n, CHUNK)]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def recommend(self, texts: str | Sequence[str], k: int = 5, *, at: Any = None, user: Any = None) -> list[Ranking]:
        """The k best hashtags with scores for each text (a str is a batch of one).

        `at` scores as of a moment (POSIX seconds or ISO 8601; one for all texts or one per text):
        the model uses no post from after it. `user` names the author (one, or one per text).
        Returns a list (one entry per text) of up to k `(hashtag, score)` pairs, best first;
        fewer than k only when the model knows fewer hashtags.
        """
        texts, k = check_texts(texts), check_k(k)
        self._check_fitted()
        return self.rank_docs(tokenize_many(texts), k, per_text_times(at, len(texts)), per_text_users(user, len(texts)))

    def suggest(
        self,
        texts: str | Sequence[str],
        k: int = 5,
        *,
        at: Any = None,
        user: Any = None,
        min_confidence: float | None = None,
    ) -> list[list[Suggestion]]:
        """`recommend` with each hashtag's calibrated confidence, P(the author used it) (hashrec.calibration).

        Returns per text up to k `Suggestion(hashtag, score, confidence)`, best first; with
        `min_confidence` only those at or above it, so a list may be empty ("no hashtag fits").
        A model without calibration (fitted without dev posts, or saved before it existed) gives
        confidence None and refuses `min_confidence`.
        """
        if min_confidence is not None:
            self.check_min_confidence(min_confidence)
        return suggestions(self.calibration_, self.recommend(texts, k, at=at, user=user), min_confidence)

    def check_min_confidence(self, min_confidence: float) -> None:
        """Refuse a threshold that is not a probability, or one this model cannot apply (no calibration)."""
        if (
            isinstance(min_confidence, bool)
            or not isinstance(min_confidence, (int, float))
            or not 0 <= min_confidence <= 1
        ):
            raise ConfigError(f"min_confidence must be a probability in [0, 1], got {min_confidence!r}")
        if self.calibration_ is None:
            raise ConfigError(
                f"this {self.name} model has no calibrated confidence (it was trained without a dev "
                "split, or saved before hashrec calibrated models), so min_confidence cannot apply; "
                "retrain it with a dev split, or leave min_confidence out"
            )

    def _dev_set(self, dev: Sequence[Post] | None) -> Dev | None:
        """Held-out posts, tokenised, or None without any."""
        if not dev:
            return None
        dev = check_posts(dev, f"{self.name}.fit(dev)")
        return Dev(tokenize_many([p.text for p in dev]), [p.hashtags for p in dev])

    def _calibrate(self, dev: Dev | None) -> None:
        """Fit `calibration_` on held-out posts: their gold hashtags against the model's top `RANKS`."""
        self.calibration_ = Calibration.fit(dev.tags, self.rank_docs(dev.docs, RANKS)) if dev else None

    def explain(self, texts: str | Sequence[str]) -> list[list[tuple[str, float]]]:
        """Trigger words with their attention weights, per text (models with attention only)."""
        raise ConfigError(f"model {self.name!r} has no attention to explain; use acnn or attention")

    def evaluate(self, posts: Sequence[Post], ks: Sequence[int] = (1, 2, 3, 4, 5)) -> dict[int, Scores]:
        """Eq. 11 (micro P@k R@k F1@k) on posts with gold hashtags."""
        gold, ranked = self.gold_and_ranked(posts, max(ks))
        return evaluate_ranked(gold, ranked, ks)

    def gold_and_ranked(self, posts: Sequence[Post], k: int) -> tuple[Tags, list[list[str]]]:
        """Gold hashtags and the top-k recommended hashtags of each post, for the metrics."""
        posts = check_posts(posts, f"{self.name}.evaluate")
        ranked = self.rank_docs(tokenize_many([p.text for p in posts]), k)
        return [p.hashtags for p in posts], [[t for t, _ in r] for r in ranked]

    # ------------------------------------------------------------------ persistence

    def _state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Arrays (saved as safetensors) and JSON-able values that, with the config, rebuild the model."""
        raise NotImplementedError

    def _set_state(self, arrays: dict[str, np.ndarray], state: dict[str, Any]) -> None:
        raise NotImplementedError

    def save(self, path: str | Path) -> None:
        """Write the model directory atomically (model.json + weights.safetensors; no pickle)."""
        self._check_fitted()
        arrays, state = self._state()
        arrays = dict(arrays, label_counts_=self.label_counts_)
        meta = {
            "hashrec_version": __version__,
            "model": self.name,
            "config": self.get_params(),
            "labels": self.labels_,
            "trained_on": self.trained_on_,
            "metrics": self.metrics_,
            "state": state,
            "calibration": self.calibration_.to_json() if self.calibration_ else None,
        }
        save_model_dir(path, meta, arrays)

    @classmethod
    def load(cls, path: str | Path) -> Recommender:
        """Load a saved model of any registered kind (`Recommender.load`) or of this class."""
        from hashrec.models import model_class

        meta, arrays = load_model_dir(path)
        try:
            klass = model_class(meta["model"]) if cls is Recommender else cls
            model = klass(**meta["config"])
            model.labels_ = list(meta["labels"])
            model.label_index_ = {t: i for i, t in enumerate(model.labels_)}
            model.label_counts_ = arrays.pop("label_counts_")
            model.trained_on_ = dict(meta.get("trained_on", {}))
            model.metrics_ = dict(meta.get("metrics", {}))
            model._set_state(arrays, meta["state"])
            model.calibration_ = Calibration.from_json(meta.get("calibration"), str(path))
        except (KeyError, TypeError, ValueError, ConfigError) as e:
            raise ModelFileError(
                f"{path}: model.json does not describe a model this hashrec can "
                f"rebuild ({type(e).__name__}: {e}); retrain it"
            ) from None
        return model
