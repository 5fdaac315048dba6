"""The paper's evaluation, Eq. 11 of Gong & Zhang 2016 (docs/paper.md §8). The only home of P@k R@k F1@k.

Micro-averaged over the whole test set, k recommendations for every post:
P@k = N_r / N_s, R@k = N_r / N_m, F1@k = 2PR / (P + R), with N_r the correct recommendations,
N_s = k x posts, and N_m the gold hashtags of all posts (also those never seen in training).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Scores:
    k: int
    n_posts: int
    n_correct: int
    precision: float
    recall: float
    f1: float

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def evaluate_ranked(
    gold: Sequence[Sequence[str]], ranked: Sequence[Sequence[str]], ks: Sequence[int] = (1, 2, 3, 4, 5)
) -> dict[int, Scores]:
    """Eq. 11 at each k, from gold hashtags and ranked recommendations (best first) per post.

    >>> s = evaluate_ranked([["a"], ["b", "c"]], [["a", "x"], ["x", "c"]], ks=[1, 2])
    >>> (s[1].precision, s[1].recall, round(s[2].f1, 3))
    (0.5, 0.3333333333333333, 0.571)
    """
    if len(gold) != len(ranked):
        raise ValueError(f"{len(gold)} gold posts but {len(ranked)} rankings")
    n_gold = sum(len(set(g)) for g in gold)
    out = {}
    for k in ks:
        n_correct = sum(len(set(r[:k]) & set(g)) for g, r in zip(gold, ranked))
        p = n_correct / (k * len(gold)) if gold else 0.0
        r = n_correct / n_gold if n_gold else 0.0
        f = 2 * p * r / (p + r) if p + r else 0.0
        out[k] = Scores(k, len(gold), n_correct, p, r, f)
    return out


def evaluate_per_post(
    gold: Sequence[Sequence[str]], ranked: Sequence[Sequence[str]], ks: Sequence[int] = (1, 2, 3, 4, 5)
) -> dict[int, Scores]:
    """The per-post averaged variant (NOT the paper's Eq. 11): P, R and F1 of each post, then the mean.

    >>> s = evaluate_per_post([["a"], ["b", "c"]], [["a", "x"], ["x", "c"]], ks=[2])
    >>> (s[2].precision, s[2].recall, round(s[2].f1, 4))
    (0.5, 0.75, 0.5833)
    """
    if len(gold) != len(ranked):
        raise ValueError(f"{len(gold)} gold posts but {len(ranked)} rankings")
    out = {}
    for k in ks:
        hits = [len(set(r[:k]) & set(g)) for g, r in zip(gold, ranked)]
        ps = [h / k for h in hits]
        rs = [h / len(set(g)) if g else 0.0 for h, g in zip(hits, gold)]
        fs = [2 * p * r / (p + r) if p + r else 0.0 for p, r in zip(ps, rs)]
        n = max(len(gold), 1)
        out[k] = Scores(k, len(gold), sum(hits), sum(ps) / n, sum(rs) / n, sum(fs) / n)
    return out


def report(
    gold: Sequence[Sequence[str]], ranked: Sequence[Sequence[str]], ks: Sequence[int] = (1, 2, 3, 4, 5)
) -> dict[str, object]:
    """`{"posts": N, "micro": {"1": {"precision", "recall", "f1"}, ...}, "per_post": {...}}`."""

    def shape(scores: dict[int, Scores]) -> dict[str, dict[str, float]]:
        return {str(k): {"precision": s.precision, "recall": s.recall, "f1": s.f1} for k, s in scores.items()}

    return {
        "posts": len(gold),
        "micro": shape(evaluate_ranked(gold, ranked, ks)),
        "per_post": shape(evaluate_per_post(gold, ranked, ks)),
    }


def format_table(scores: dict[int, Scores]) -> str:
    """fastText-style lines: `N`, then `P@k R@k F1@k` per k."""
    n = next(iter(scores.values())).n_posts if scores else 0
    lines = [f"N\t{n}"]
    for k, s in scores.items():
        lines.append(f"P@{k}\t{s.precision:.4f}\tR@{k}\t{s.recall:.4f}\tF1@{k}\t{s.f1:.4f}")
    return "\n".join(lines)
