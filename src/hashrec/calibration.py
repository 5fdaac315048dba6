"""Calibrated confidence: the probability that a suggested hashtag is one the post's author used.

Scores are not comparable between models (nb: log-probabilities, knn: sums of cosines, acnn: softmax
probabilities, boost: LightGBM's ranking scores), so no threshold on them means the same thing twice.
`Calibration` maps a model's own (rank, score) of a suggestion to P(hashtag is gold), learned on
held-out posts with isotonic regression (Zadrozny & Elkan, KDD 2002; pool-adjacent-violators): one
non-decreasing step function of the score per rank 1..`RANKS` (deeper ranks use the last), because
the same score means less further down a list (knn's 1.0 at rank 1 is a near-duplicate's vote, at
rank 3 a tie). Confidence is then made non-increasing down each list, so it orders suggestions as
the score does. Model-agnostic: it needs only the ranked lists, never the model's internals.

Stored as plain numbers in model.json (`"calibration"`: the steps' score breakpoints and
probabilities per rank), applied by `Recommender.suggest`. A model fitted without dev posts, or
saved before calibration existed, has none: its confidence is None (null in JSON).
`reliability` measures it on test posts: observed frequency per confidence bin and the expected
calibration error (ECE, Naeini et al., AAAI 2015).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from hashrec.errors import ModelFileError

RANKS = 10  # ranks with their own step function; one fit uses each dev post's top RANKS suggestions
MIN_POSTS = 20  # fewer held-out posts give steps too coarse to mean anything: no calibration then


class Suggestion(NamedTuple):
    """One suggested hashtag: the model's own `score` and the calibrated `confidence` (None: uncalibrated)."""

    hashtag: str
    score: float
    confidence: float | None


def isotonic(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pool-adjacent-violators: breakpoints (xs, ps) of the non-decreasing least-squares fit of y on x.

    Equal x share one value (they are pooled first). Each block contributes its lowest and highest x
    with the block's mean; `np.interp` between them is flat inside a block and linear between blocks.
    """
    ux, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=y.astype(np.float64))
    means, weights, lo, hi = [], [], [], []  # one entry per block, merged while it violates the order
    for xi, total, n in zip(ux.tolist(), sums.tolist(), counts.tolist()):
        means.append(total / n), weights.append(float(n)), lo.append(xi), hi.append(xi)
        while len(means) > 1 and means[-2] >= means[-1]:
            w = weights[-2] + weights[-1]
            means[-2] = (means[-2] * weights[-2] + means[-1] * weights[-1]) / w
            weights[-2], hi[-2] = w, hi[-1]
            del means[-1], weights[-1], lo[-1], hi[-1]
    xs = np.array([v for a, b in zip(lo, hi) for v in (a, b)])
    return xs, np.repeat(np.array(means), 2)


@dataclass(frozen=True)
class Calibration:
    """Per rank, the isotonic step function from score to P(gold): `steps[r] = (scores, probabilities)`."""

    steps: tuple[tuple[np.ndarray, np.ndarray], ...]
    n_posts: int  # held-out posts it was fitted on

    @classmethod
    def fit(cls, gold: Sequence[Sequence[str]], ranked: Sequence[Sequence[tuple[str, float]]]) -> Calibration | None:
        """Fit on held-out posts: their gold hashtags and the model's top-`RANKS` (hashtag, score) lists."""
        if len(ranked) < MIN_POSTS:
            return None
        rows = [(r, s, t in g) for g, row in zip(gold, ranked) for r, (t, s) in enumerate(row[:RANKS])]
        rank, score, hit = (np.array(c) for c in zip(*rows))
        score = np.nan_to_num(score.astype(np.float64), nan=-np.inf)
        steps = []
        for r in range(min(RANKS, int(rank.max()) + 1)):
            at = (rank == r) & np.isfinite(score)
            if not at.any():
                break
            steps.append(isotonic(score[at], hit[at]))
        return cls(tuple(steps), len(ranked)) if steps else None

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        """Confidence of ranked lists' scores, (n_lists, n_ranks) best first: in [0, 1], non-increasing along a row."""
        scores = np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=-np.inf)  # nan ranks lowest
        out = np.empty_like(scores)
        for r in range(scores.shape[1]):  # one rank for all lists at once: np.interp is vectorised
            xs, ps = self.steps[min(r, len(self.steps) - 1)]
            out[:, r] = np.interp(scores[:, r], xs, ps)
        return np.minimum.accumulate(out, axis=1)

    def to_json(self) -> dict[str, Any]:
        return {
            "method": "isotonic per rank",
            "n_posts": self.n_posts,
            "ranks": [{"scores": xs.tolist(), "p": ps.tolist()} for xs, ps in self.steps],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any] | None, where: str) -> Calibration | None:
        """From model.json's `"calibration"`; None (absent, or saved before calibration existed) stays None."""
        if data is None:
            return None
        try:
            steps = tuple(
                (np.array(r["scores"], dtype=np.float64), np.array(r["p"], dtype=np.float64)) for r in data["ranks"]
            )
            if not steps or any(
                len(xs) != len(ps) or not len(xs) or np.any(np.diff(xs) < 0) or np.any((ps < 0) | (ps > 1))
                for xs, ps in steps
            ):
                raise ValueError("breakpoints must be sorted scores with probabilities in [0, 1]")
            return cls(steps, int(data["n_posts"]))
        except (KeyError, TypeError, ValueError) as e:
            raise ModelFileError(f"{where}: model.json's calibration is malformed ({e}); retrain the model") from None


def suggestions(
    calibration: Calibration | None, ranked: Sequence[Sequence[tuple[str, float]]], min_confidence: float | None = None
) -> list[list[Suggestion]]:
    """Ranked (hashtag, score) lists as `Suggestion`s; with `min_confidence`, only those at or above it."""
    width = max(map(len, ranked), default=0)
    if calibration is None:
        conf: list[list[Any]] = [[None] * width] * len(ranked)
    else:
        scores = np.full((len(ranked), width), -np.inf)  # a shorter list's padding comes last: changes nothing
        for i, row in enumerate(ranked):
            scores[i, : len(row)] = [s for _, s in row]
        conf = calibration(scores).tolist()
    return [
        [
            Suggestion(t, s, c)
            for (t, s), c in zip(row, cs)
            if min_confidence is None or (c is not None and c >= min_confidence)
        ]
        for row, cs in zip(ranked, conf)
    ]


def reliability(
    gold: Sequence[Sequence[str]], suggested: Sequence[Sequence[Suggestion]], bins: int = 10
) -> dict[str, Any]:
    """Observed frequency of gold hashtags per confidence bin, and the expected calibration error.

    ECE = sum over bins of (suggestions in bin / all) * |mean confidence - observed frequency|.
    """
    conf = np.array([s.confidence for row in suggested for s in row], dtype=np.float64)
    hit = np.array([s.hashtag in g for g, row in zip(gold, suggested) for s in row], dtype=np.float64)
    which = np.minimum((conf * bins).astype(int), bins - 1)
    table = []
    for b in range(bins):
        at = which == b
        if at.any():
            table.append(
                {
                    "bin": f"{b / bins:.1f}-{(b + 1) / bins:.1f}",
                    "n": int(at.sum()),
                    "confidence": float(conf[at].mean()),
                    "observed": float(hit[at].mean()),
                }
            )
    ece = sum(row["n"] * abs(row["confidence"] - row["observed"]) for row in table) / max(1, len(conf))
    brier = float(np.mean((conf - hit) ** 2)) if len(conf) else 0.0
    return {"n": int(len(conf)), "ece": float(ece), "brier": brier, "bins": table}
