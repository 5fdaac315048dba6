"""Prequential evaluation on a stream (../shared/benchmarks/weibo-stream/README.md): `hashrec stream`.

A stream directory holds warmup, dev and test (.jsonl or .jsonl.gz, from `hashrec data prepare
--stream`), each post with a time, in stream order. The model is fitted on warmup; then dev and
test are replayed `chunk` posts at a time: each chunk is first recommended, as of its posts' times
(`recommend(at=...)`), and then learned (`update`). Only test posts are scored (Eq. 11, micro).
A test post is "seen" when one of its gold hashtags was used in warm-up or in an earlier chunk;
the share of seen posts bounds what any recommender of known hashtags can reach (the ceiling).

Protocols: "stream" learns from every chunk; "static" never learns after warm-up; "daily" refits
from scratch at each new (UTC) day on every post of the earlier days. A model that cannot learn
online (fasttext, lda, ibm1, topicwa, ttm, the networks) runs as static under the default protocol,
and the report says so. Posts that are not scored (dev, under the default scoring) are learned but
not recommended, and the daily baseline refits only before the days it scores: neither changes a
scored recommendation.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from hashrec.data import STREAM_PARTS, Post, format_time, load_split, split_file
from hashrec.errors import ConfigError, DataError
from hashrec.metrics import evaluate_ranked, report
from hashrec.models import MODELS, create
from hashrec.models.base import Recommender
from hashrec.store import atomic_open, claim_output_dir, write_json

# The best streaming setup, run by `hashrec stream` without --model (docs/results/stream.md).
DEFAULT_MODEL = "stream"
Protocol = Literal["stream", "static", "daily"]
PROTOCOLS: tuple[Protocol, ...] = ("stream", "static", "daily")
K = 5
DAY = 86400.0
STREAM = "stream"  # the kind of output folder `hashrec stream` makes (hashrec.store.claim_output_dir)
LOG_EVERY = 50  # chunks between progress lines when the output is not a terminal
Log = Callable[[str], None]


@dataclass
class Tally:
    """What the replay records of the scored posts, and what learning and recommending cost."""

    gold: list[tuple[str, ...]] = field(default_factory=list)
    ranked: list[list[str]] = field(default_factory=list)
    seen: list[bool] = field(default_factory=list)
    days: list[str] = field(default_factory=list)
    recommend_s: float = 0.0
    learn_s: float = 0.0
    n_recommended: int = 0
    n_refits: int = 0


def load_stream(data: str | Path) -> dict[str, list[Post]]:
    """warmup, dev and test of a stream directory; every dev and test post needs a time, in order."""
    parts = {part: load_split(data, part) for part in STREAM_PARTS}
    previous = -math.inf
    for part in ("dev", "test"):
        for n, post in enumerate(parts[part], 1):
            if post.time is None or post.time < previous:
                problem = "has no time" if post.time is None else "is earlier than the post before it"
                raise DataError(
                    f"{split_file(data, part)} line {n}: the post {problem}; a stream is in time "
                    "order: make it with `hashrec data prepare --stream`"
                )
            previous = post.time
    return parts


def start_model(model: str | Path, warmup: list[Post], params: dict[str, Any], log: Log) -> tuple[Recommender, float]:
    """A registry name fitted on warmup, or a trained model directory loaded as it is; and the fit's seconds."""
    if str(model) in MODELS:
        log(f"fitting {model} on {len(warmup):,} warm-up posts")
        started = time.perf_counter()
        rec = create(str(model), **params).fit(warmup)
        return rec, time.perf_counter() - started
    if params:
        raise ConfigError(
            "--set applies to a model trained here (a registry name: "
            f"{', '.join(MODELS)}); a trained model directory keeps its own settings"
        )
    if not Path(model).is_dir():
        raise ConfigError(f"--model {model}: neither a registry name ({', '.join(MODELS)}) nor a model directory")
    return Recommender.load(model), 0.0


def choose_protocol(rec: Recommender, baseline: Protocol | None, log: Log) -> tuple[Protocol, str | None]:
    """The protocol to run: a static model runs under "static" unless "daily" is asked for."""
    protocol: Protocol = baseline or "stream"
    if protocol not in PROTOCOLS:
        raise ConfigError(f"--baseline {baseline!r}: choose static or daily (default: learn from every chunk)")
    if protocol == "stream" and not rec.learns_online:
        note = f"{rec.name} cannot learn after fit: it runs as static (never learns after warm-up)"
        log(note)
        return "static", note
    return protocol, None


def day_of(seconds: float) -> int:
    """The UTC day number of a time: the daily baseline refits when it changes."""
    return math.floor(seconds / DAY)


def day_groups(posts: Sequence[Post]) -> list[tuple[int, int]]:
    """(start, stop) of the runs of posts of one UTC day."""
    bounds = [0] + [i for i in range(1, len(posts)) if day_of(posts[i].time) != day_of(posts[i - 1].time)]
    return list(zip(bounds, bounds[1:] + [len(posts)]))


def replay(
    rec: Recommender,
    warmup: list[Post],
    stream: list[Post],
    first_scored: int,
    chunk: int,
    protocol: Protocol,
    log: Log,
) -> Tally:
    """Recommend then learn each chunk of `stream`; record the posts from `first_scored` on."""
    tally = Tally()
    known = {t for p in warmup for t in p.hashtags}
    day_start = {day_of(p.time): i for i, p in reversed(list(enumerate(stream)))}  # first post of each day
    n_fitted = 0  # daily: stream posts in the current fit
    progress = Progress(math.ceil(len(stream) / chunk), log)
    for start in range(0, len(stream), chunk):
        block = stream[start : start + chunk]
        scored = block[max(first_scored - start, 0) :]  # unscored (dev) posts are learned, never recommended
        ranked: list[list[str]] = []
        # daily: a chunk that crosses midnight is recommended in two parts, the second after the refit
        for a, b in (day_groups(scored) if protocol == "daily" else [(0, len(scored))]) if scored else []:
            first_of_day = day_start[day_of(scored[a].time)]
            if protocol == "daily" and first_of_day > n_fitted:
                rec, n_fitted = refit(rec, warmup + stream[:first_of_day], tally), first_of_day
            ranked += recommend_block(rec, scored[a:b], tally)
        for post, top in zip(scored, ranked):
            tally.gold.append(post.hashtags)
            tally.ranked.append(top)
            tally.seen.append(any(t in known for t in post.hashtags))
            tally.days.append(format_time(day_of(post.time) * DAY))
        known.update(t for p in block for t in p.hashtags)
        if protocol == "stream":
            started = time.perf_counter()
            rec.update(block)
            tally.learn_s += time.perf_counter() - started
        progress.step("scored" if scored else "not scored")
    progress.close()
    return tally


def recommend_block(rec: Recommender, posts: list[Post], tally: Tally) -> list[list[str]]:
    """Top K hashtags of each post, as of its time and for its author."""
    started = time.perf_counter()
    out = rec.recommend([p.text for p in posts], K, at=[p.time for p in posts], user=[p.user for p in posts])
    tally.recommend_s += time.perf_counter() - started
    tally.n_recommended += len(posts)
    return [[t for t, _ in r] for r in out]


def refit(rec: Recommender, posts: list[Post], tally: Tally) -> Recommender:
    """A new model of the same kind and settings, fitted on `posts`."""
    started = time.perf_counter()
    fresh = type(rec)(**rec.get_params()).fit(posts)
    tally.learn_s += time.perf_counter() - started
    tally.n_refits += 1
    return fresh


class Progress:
    """A tqdm bar on a terminal; otherwise a line every LOG_EVERY chunks with the time left."""

    def __init__(self, total: int, log: Log) -> None:
        self.total, self.done, self.log, self.started = total, 0, log, time.perf_counter()
        self.bar = None
        if sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc="stream", unit="chunk")

    def step(self, what: str) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.update(1)
        elif self.done % LOG_EVERY == 0 or self.done == self.total:
            elapsed = time.perf_counter() - self.started
            left = elapsed / self.done * (self.total - self.done)
            self.log(f"chunk {self.done:,}/{self.total:,} ({what}) {elapsed:.0f} s, about {left:.0f} s left")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def summarise(tally: Tally, *, n_learned: int) -> dict[str, Any]:
    """Eq. 11 overall and for the seen and the new posts, the ceiling, per-day F1@1 and the costs."""

    def part(keep: Sequence[bool]) -> dict[str, Any]:
        gold = [g for g, k in zip(tally.gold, keep) if k]
        return report(gold, [r for r, k in zip(tally.ranked, keep) if k], range(1, K + 1))

    per_day = []
    for day in dict.fromkeys(tally.days):
        keep = [d == day for d in tally.days]
        gold = [g for g, k in zip(tally.gold, keep) if k]
        f1 = evaluate_ranked(gold, [r for r, k in zip(tally.ranked, keep) if k], [1])[1].f1
        per_day.append(
            {
                "day": day,
                "posts": len(gold),
                "f1@1": f1,
                "ceiling": sum(s for s, k in zip(tally.seen, keep) if k) / len(gold),
            }
        )
    n = len(tally.gold)
    return {
        "all": part([True] * n),
        "seen": part(tally.seen),
        "new": part([not s for s in tally.seen]),
        "ceiling": sum(tally.seen) / n if n else 0.0,
        "per_day": per_day,
        "cost": {
            "recommend_ms_per_post": 1000 * tally.recommend_s / max(tally.n_recommended, 1),
            "learn_ms_per_post": 1000 * tally.learn_s / max(n_learned, 1),
            "refits": tally.n_refits,
        },
    }


def run(
    model: str | Path | None,
    data: str | Path,
    out: str | Path,
    *,
    chunk: int = 100,
    params: dict[str, Any] | None = None,
    baseline: Protocol | None = None,
    score: str = "test",
    log: Log = lambda line: None,
) -> dict[str, Any]:
    """The prequential run of `model` (a registry name, fitted on warmup, or a model directory; None:
    DEFAULT_MODEL) on the stream directory `data`; writes OUT/report.json, OUT/predictions.jsonl and
    OUT/per_day.png and returns the report. `score="dev"` replays and scores dev only: for choosing
    settings, never on test."""
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise ConfigError(f"--chunk must be a positive number of posts, got {chunk!r}")
    if score not in ("test", "dev"):
        raise ConfigError(f"--score {score!r}: choose test or dev")
    out = claim_output_dir(out, STREAM, inputs=[data])  # before the work: a bad --out costs nothing
    parts = load_stream(data)
    model = model or DEFAULT_MODEL
    rec, fit_s = start_model(model, parts["warmup"], dict(params or {}), log)
    protocol, note = choose_protocol(rec, baseline, log)
    stream = parts["dev"] + (parts["test"] if score == "test" else [])
    first_scored = len(parts["dev"]) if score == "test" else 0
    tally = replay(rec, parts["warmup"], stream, first_scored, chunk, protocol, log)
    result = {
        "model": rec.name,
        "from": str(model),
        "config": rec.get_params(),
        "protocol": protocol,
        **({"note": note} if note else {}),
        "data": str(data),
        "scored": score,
        "chunk": chunk,
        "k": K,
        "posts": {part: len(posts) for part, posts in parts.items()},
        **summarise(tally, n_learned=len(stream) if protocol != "static" else 0),
    }
    result["cost"]["warmup_fit_s"] = fit_s
    write_json(out / "report.json", result)
    with atomic_open(out / "predictions.jsonl", "w", encoding="utf-8") as f:
        for post, ranked in zip(stream[first_scored:], tally.ranked):
            f.write(json.dumps({"text": post.text, "hashtags": ranked}, ensure_ascii=False) + "\n")
    plot_per_day(result, out / "per_day.png")
    return result


def plot_per_day(result: dict[str, Any], path: Path) -> None:
    """F1@1 and the ceiling of each scored day."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    days = [row["day"] for row in result["per_day"]]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.plot(days, [row["f1@1"] for row in result["per_day"]], marker="o", label="F1@1")
    ax.plot(days, [row["ceiling"] for row in result["per_day"]], ls="--", color="grey", label="ceiling (seen posts)")
    ax.set(ylabel="per day", ylim=(0, 1), title=f"{result['model']}, {result['protocol']}, chunk {result['chunk']}")
    ax.tick_params(axis="x", rotation=45)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png", dpi=120)
    plt.close(fig)


def format_summary(result: dict[str, Any]) -> str:
    """The lines `hashrec stream` prints: F1@1 overall, seen and new, the ceiling and the costs."""
    f1 = {part: result[part]["micro"]["1"]["f1"] for part in ("all", "seen", "new")}
    cost = result["cost"]
    return (
        f"{result['model']} ({result['protocol']}, chunk {result['chunk']}) on {result['scored']}: "
        f"F1@1 {f1['all']:.4f} (seen {f1['seen']:.4f}, new {f1['new']:.4f}; {result['seen']['posts']:,} seen "
        f"of {result['all']['posts']:,}, ceiling {result['ceiling']:.4f})\n"
        f"cost: warm-up fit {cost['warmup_fit_s']:.1f} s, learning {cost['learn_ms_per_post']:.3f} ms/post, "
        f"recommending {cost['recommend_ms_per_post']:.3f} ms/post"
    )
