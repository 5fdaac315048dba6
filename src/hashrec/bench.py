"""`hashrec bench`: speed and memory of the pipeline on the reference benchmarks, in one run.

The machine is shared and noisy, so everything is measured in the same run and the figures that
matter are ratios (ACNN against fastText, achieved against peak FLOP/s); each row carries the
1-minute load average at the time it was taken. Steps:

1. tokenisation throughput, Chinese (jieba-rs, weibo) and English (tweeteval), one process and the pool;
2. fastText (the `fasttext` recommender: supervised, hierarchical softmax, word bigrams) trained
   on the same tokens: its time and dev F1@1, the bar ACNN has to reach;
3. ACNN trained in a child process (`hashrec.models.create` + `fit`): epoch time, posts/s, the
   wall time until its dev F1@1 reaches fastText's, peak RSS. A watcher thread reads the model's
   per-epoch `history_` and stops the fit (KeyboardInterrupt) at the time budget or at the bar;
4. serving in a second child process (`Recommender.load`): batch throughput and single-post latency
   of ACNN and of fastText's `predict` on the same posts, "text in" (tokenisation included) and
   "tokens in", peak RSS;
5. the fraction of the machine's matrix-multiply peak (a large `torch.matmul`, same child) that
   ACNN's forward (inference) and forward + backward (training) FLOPs reach, FLOPs counted from
   the config (`acnn_flops`).

`bench(data, ...)` is the Python entry point; `quick=True` is a smoke run on 1,000 posts and a small model.
"""

from __future__ import annotations

import _thread
import contextlib
import dataclasses
import multiprocessing as mp
import os
import queue
import resource
import signal
import statistics
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from hashrec.data import load_split
from hashrec.errors import HashrecError
from hashrec.store import atomic_open, claim_output_dir, write_json
from hashrec.tokens import tokenize_many, tokenize_parallel

K = 5  # hashtags per post in every inference measurement (the CLI's default)


@dataclass(frozen=True)
class Plan:
    """How much of each measurement to run; every step is bounded in posts or in seconds."""

    n_train: int | None  # training posts (None: all)
    n_dev: int | None  # dev posts for F1@1 (None: all)
    n_tokenize: int  # posts per tokenisation measurement
    n_infer: int  # posts per batch-inference measurement
    n_latency: int  # single-post calls per latency measurement
    seconds: float  # cap on each throughput / latency measurement
    train_budget: float  # seconds of ACNN fit before it is stopped
    acnn: dict[str, Any] = field(default_factory=dict)  # overrides of the model's defaults
    fasttext: dict[str, Any] = field(default_factory=dict)  # overrides of the fasttext recommender's defaults
    batch_sizes: tuple[int, ...] = (1, 16, 64, 256, 1024)


FULL = Plan(
    n_train=None, n_dev=None, n_tokenize=20_000, n_infer=10_000, n_latency=200, seconds=30.0, train_budget=480.0
)
QUICK = Plan(
    n_train=1000,
    n_dev=200,
    n_tokenize=300,
    n_infer=200,
    n_latency=10,
    seconds=1.0,
    train_budget=30.0,
    fasttext={"epoch": 5},
    batch_sizes=(1, 64),
    acnn={
        "dim": 16,
        "n_maps": 16,
        "local_dim": 16,
        "hidden": 32,
        "embeddings": "random",
        "epochs": 1,
        "batch_size": 50,
        "lr": 0.01,
    },
)  # 20 optimiser steps rather than 5


@dataclass
class Row:
    """One figure: `value` in `unit`; `bound` is ">" when the value is a lower bound (not reached).

    `cpu` is the same figure counted in CPU seconds (all threads and worker processes) rather than
    wall seconds: for a time, CPU seconds; for a rate, per CPU second. On a machine shared with
    other jobs it moves much less with the load than the wall figure.
    """

    group: str
    measure: str
    value: float
    unit: str
    note: str = ""
    bound: str = ""
    cpu: float | None = None
    load: float = field(default_factory=lambda: round(os.getloadavg()[0], 2))


# ---------------------------------------------------------------------------- timing helpers


class Rate(NamedTuple):
    wall: float  # items per wall second
    cpu: float  # items per CPU second


def cpu_seconds() -> float:
    """User + system CPU of this process (all threads) and of its finished children (worker pools)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def rate(fn: Callable[[list], Any], items: Sequence, batch: int, seconds: float) -> Rate:
    """Items per second of `fn` over successive batches, stopping after `seconds` (at least one batch)."""
    done, t0, c0 = 0, time.perf_counter(), cpu_seconds()
    for start in range(0, len(items), batch):
        fn(list(items[start : start + batch]))
        done += len(items[start : start + batch])
        if time.perf_counter() - t0 > seconds:
            break
    return Rate(done / (time.perf_counter() - t0), done / max(cpu_seconds() - c0, 1e-9))


def latency_ms(fn: Callable[[Any], Any], items: Sequence, seconds: float) -> tuple[float, float]:
    """Median and 95th percentile milliseconds of `fn(item)`, one item a call, for at most `seconds`."""
    times: list[float] = []
    t_end = time.perf_counter() + seconds
    for item in items:
        t = time.perf_counter()
        fn(item)
        times.append((time.perf_counter() - t) * 1000)
        if t > t_end:
            break
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(0.95 * len(times)))]


def peak_rss_mb() -> float:
    """This process's peak resident set size so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def matmul_peak(threads: int, n: int = 2048, seconds: float = 3.0) -> float:
    """GFLOP/s of the best of repeated (n x n) @ (n x n) float32 products on `threads` threads."""
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    c = torch.matmul(a, b)  # warm-up: thread pool, caches
    best, t_end = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < t_end:
        t = time.perf_counter()
        torch.matmul(a, b, out=c)
        best = max(best, 2 * n**3 / (time.perf_counter() - t) / 1e9)
    return best


def acnn_flops(config: Any, n_labels: int, n_tokens: float, inference: bool = False) -> float:
    """Forward FLOPs (2 per multiply-add) of one post of `n_tokens` words through `ACNNNet`.

    Counts the matrix products only (element-wise tanh, max pooling and softmax are < 1%), as
    `WindowLinear` computes them: each of the n words times each of a window's l weight blocks
    (pads cost nothing), so global windows l (n words of d -> l * n_maps), the attention score
    (n words of d -> h), the folding sum (n*d), h_l (d -> local_dim),
    the combining layer ([h_g; h_l] -> hidden) and the output layer (hidden -> labels).
    `inference`: without the window products, which inference reads from tables
    (`ACNNNet.window_sums`) and so does not multiply.
    Training costs about 3x the full count: the backward pass takes one product for the gradient
    of the input and one for that of the weights (the embeddings are trained, so the first
    layer's input gradient is needed too).
    """
    d, n = config.dim, n_tokens
    windows = 0.0 if inference else 1.0
    macs, width = 0.0, 0
    if "global" in config.channels:
        macs += windows * sum(n * d * width * config.n_maps for width in config.windows)
        width += config.n_maps * len(config.windows)
    if "local" in config.channels:
        macs += windows * n * d * config.h + n * d + d * config.local_dim
        width += config.local_dim
    macs += width * config.hidden + config.hidden * n_labels
    return 2 * macs


# ---------------------------------------------------------------------------- child processes


@contextlib.contextmanager
def child(target: Callable, job: dict[str, Any], deadline: float) -> Iterator[Callable[[], tuple]]:
    """Run `target(queue, job)` in a fresh (spawned) interpreter; yield a `next event` function.

    Spawned, not forked, so that its peak RSS is its own. The child is killed at `deadline`
    (time.monotonic) if it has not finished by then.
    """
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    proc = ctx.Process(target=_child_entry, args=(q, target, job))  # not daemonic: it may start a tokenizer pool
    proc.start()

    def next_event() -> tuple:
        try:
            event = q.get(timeout=max(1.0, deadline - time.monotonic()))
        except queue.Empty:
            raise HashrecError(
                f"benchmark step {target.__name__} ran past its time limit; "
                "rerun when the machine is less loaded, or with --quick"
            ) from None
        if event[0] == "error":
            raise HashrecError(f"benchmark step {target.__name__} failed:\n{event[1]}")
        return event

    try:
        yield next_event
    finally:
        proc.join(timeout=5)
        if proc.is_alive():
            proc.kill()
            proc.join()


def _child_entry(q: Any, target: Callable[[Any, dict], None], job: dict) -> None:
    """Run a child step; report its exception to the parent instead of dying silently."""
    try:
        target(q, job)
    except BaseException:  # the parent re-raises it as a HashrecError
        q.put(("error", traceback.format_exc()))


class TrainingSteps:
    """A forward hook on `model.net_` that counts the posts of each training-mode forward pass, with
    wall and CPU time: the training throughput, dev scoring excluded, before any epoch ends."""

    def __init__(self, t0: float) -> None:
        self.t0, self.posts, self.first, self.last = t0, 0, None, None

    def __call__(self, module: Any, args: tuple, output: Any) -> None:
        if module.training:
            self.posts += args[0].shape[0]
            self.last = (self.posts, time.perf_counter() - self.t0, cpu_seconds())
            self.first = self.first or self.last

    def summary(self) -> tuple[int, float, float] | None:
        """(posts, wall s, CPU s) from the end of the first training batch to the end of the last."""
        if self.first is None or self.last is self.first:
            return None
        return tuple(b - a for a, b in zip(self.first, self.last))  # type: ignore[return-value]


def _watch(model: Any, q: Any, t0: float, job: dict, state: dict, lock: threading.Lock) -> None:
    """Report each finished epoch of `model.fit`; interrupt the fit at the budget or at the F1 bar."""
    seen = 0
    while True:
        now = time.perf_counter() - t0
        if "steps" not in state and getattr(model, "net_", None) is not None:
            state["steps"] = TrainingSteps(t0)
            model.net_.register_forward_hook(state["steps"])
        history = getattr(model, "history_", None)
        if history is not None and "train_start" not in state:
            state["train_start"] = now  # history_ is created right before the first epoch
            q.put(("train_start", now, cpu_seconds()))
        if history is not None and len(history) > seen:
            for entry in history[seen:]:
                f1 = entry.get("dev_f1@1") or 0.0
                q.put(("epoch", now, f1, cpu_seconds()))
                state["reached"] = state.get("reached") or f1 >= job["target_f1"]
            seen = len(history)
        with lock:
            if not state["fitting"]:
                return
            # stop only after two training batches: a model to save and a throughput to report
            trained = "steps" in state and state["steps"].summary() is not None
            if trained and (now > job["budget"] or (state.get("reached") and job["stop_at_target"])):
                state["stopped"] = "stopped at the F1 bar" if state.get("reached") else "stopped at the time budget"
                _thread.interrupt_main()
                return
        time.sleep(0.05)


def _train_child(q: Any, job: dict) -> None:
    """Fit `job["model"]` on the split, timing epochs through a watcher thread; save it for serving."""
    import torch

    from hashrec.models import create

    # Python leaves SIGINT ignored when it starts ignored (a `cmd &` of a shell without job control),
    # and then the watcher's interrupt would do nothing.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    torch.set_num_threads(job["threads"])
    train = load_split(job["data"], "train")[: job["n_train"]]
    dev = load_split(job["data"], "dev")[: job["n_dev"]]
    model = create(job["model"], **job["params"])
    state, lock = {"fitting": True, "stopped": "finished all epochs"}, threading.Lock()
    t0 = time.perf_counter()
    q.put(("fit_start", cpu_seconds()))
    threading.Thread(target=_watch, args=(model, q, t0, job, state, lock), daemon=True).start()
    try:
        try:
            model.fit(train, dev)
        finally:
            with lock:
                state["fitting"] = False
        time.sleep(0.1)  # an interrupt raised just as fit returned lands here, inside the try
    except KeyboardInterrupt:
        pass  # the watcher stopped the fit: the weights so far serve for the inference timings
    steps = state["steps"].summary() if "steps" in state else None
    q.put(("fit_end", time.perf_counter() - t0, state["stopped"], peak_rss_mb(), len(train), cpu_seconds(), steps))
    model.save(job["model_dir"])
    q.put(("saved",))


def _serve_child(q: Any, job: dict) -> None:
    """Load the saved models and time batch and single-post inference, then the matmul peak."""
    import torch

    from hashrec.models.base import Recommender

    torch.set_num_threads(job["threads"])
    texts, plan = job["texts"], Plan(**job["plan"])
    docs = tokenize_many(texts, cache=False)
    model = Recommender.load(job["model_dir"])
    model.rank_docs(docs[:64], K)  # warm-up
    out = {
        "acnn_tokens": rate(lambda b: model.rank_docs(b, K), docs, 1000, plan.seconds),
        "acnn_text": rate(lambda b: model.recommend(b, K), texts, 1000, plan.seconds),
        "acnn_latency_text": latency_ms(lambda t: model.recommend(t, K), texts[: plan.n_latency], plan.seconds),
        "acnn_latency_tokens": latency_ms(lambda d: model.rank_docs([d], K), docs[: plan.n_latency], plan.seconds),
    }
    out["acnn_threads"] = {}
    for threads in sorted({1, job["threads"]}):
        torch.set_num_threads(threads)
        out["acnn_threads"][threads] = (
            rate(lambda b: model.rank_docs(b, K), docs, 1000, plan.seconds),
            latency_ms(lambda d: model.rank_docs([d], K), docs[: plan.n_latency], plan.seconds)[0],
        )
    torch.set_num_threads(job["threads"])
    out["batch_sizes"] = _batch_sweep(model, docs, plan)
    out["serve_rss_mb"] = peak_rss_mb()  # before fastText is loaded: ACNN serving alone
    out["config"] = dataclasses.asdict(model.config)
    out["n_labels"] = model.net_.out.out_features  # the softmax's width: rare hashtags may be left out of it
    out["mean_tokens"] = statistics.fmean(max(1, min(len(d), model.config.max_len)) for d in docs)

    ft_rec = Recommender.load(job["fasttext"])
    out["ft_rec_tokens"] = rate(lambda b: ft_rec.rank_docs(b, K), docs, 1000, plan.seconds)
    ft = ft_rec.ft_  # the fastText model itself: its own predict
    lines = [" ".join(d) for d in docs]
    ft.predict(lines[:64], k=K)
    out["ft_tokens"] = rate(lambda b: ft.predict(b, k=K), lines, 1000, plan.seconds)
    out["ft_text"] = rate(
        lambda b: ft.predict([" ".join(d) for d in tokenize_many(b, cache=False)], k=K), texts, 1000, plan.seconds
    )
    out["ft_latency_text"] = latency_ms(
        lambda t: ft.predict([" ".join(tokenize_many([t])[0])], k=K), texts[: plan.n_latency], plan.seconds
    )
    out["ft_latency_tokens"] = latency_ms(lambda s: ft.predict([s], k=K), lines[: plan.n_latency], plan.seconds)
    out["matmul_gflops"] = {t: matmul_peak(t, seconds=min(plan.seconds, 5.0)) for t in sorted({1, job["threads"]})}
    q.put(("serve", out))


def _batch_sweep(model: Any, docs: list[list[str]], plan: Plan) -> dict[str, Rate]:
    """Posts/s of the network alone (`model.net_`, logits) at each batch size: padded batches of the
    posts in given order and sorted by length (the training path; sorting is the least padding a
    batch can have), and `Packed` batches in given order (the inference path)."""
    import torch

    from hashrec.models.acnn_fast import pack, packed_features
    from hashrec.models.acnn_net import pad

    net = model.net_
    ids = model.encode(docs)
    by_length = sorted(ids, key=len)
    ways = {
        "padded, given order": (lambda b: net.out(net.features(pad(b))), ids),
        "padded, sorted by length": (lambda b: net.out(net.features(pad(b))), by_length),
        "packed, given order": (lambda b: net.out(packed_features(net, pack(b, net.gap))), ids),
    }
    out = {}
    with torch.inference_mode():
        for bs in plan.batch_sizes:
            for way, (fn, rows) in ways.items():
                out[f"{bs}|{way}"] = rate(fn, rows, bs, plan.seconds / 3)
    return out


# ---------------------------------------------------------------------------- the steps


def bench_tokenize(zh: list[str], en: list[str], workers: int, plan: Plan) -> list[Row]:
    """Posts/s of `tokenize` in this process and on the worker pool, cache off."""
    rows = []
    tokenize_many(zh[:10])  # loads the segmenter's dictionary once, outside the timings
    for lang, texts in (("zh (jieba-rs)", zh), ("en (regex)", en)):
        texts = texts[: plan.n_tokenize]
        for label, fn, batch in (
            ("1 process", lambda b: tokenize_many(b, cache=False), 1000),
            (f"pool of {workers}", lambda b: tokenize_parallel(b, workers=workers), 10_000),
        ):
            r = rate(fn, texts, batch, plan.seconds)
            rows.append(Row("tokenise", f"{lang}, {label}", r.wall, "posts/s", f"{len(texts):,} posts", cpu=r.cpu))
    return rows


def bench_train(job: dict) -> tuple[list[Row], Rate]:
    """ACNN fit in a child: rows for setup, throughput, epochs, F1 bar, RSS; returns the training Rate.

    Times are wall seconds from the fit call; CPU seconds (the `cpu` column) are the child's, all
    threads. Throughput counts training batches only (`TrainingSteps`); epoch time includes dev
    scoring and, when no epoch finished within the budget, is estimated from the throughput.
    """
    epochs, marks, reached = [], {}, None
    with child(_train_child, job, time.monotonic() + job["budget"] + 600) as next_event:
        while (event := next_event())[0] != "saved":
            if event[0] == "epoch":
                epochs.append(event[1:])  # (wall, dev F1@1, cpu)
                if reached is None and event[2] >= job["target_f1"]:
                    reached = (event[1], event[3])
            else:
                marks[event[0]] = event[1:]
    (cpu0,), (start, cpu_start) = marks["fit_start"], marks["train_start"]
    fit_s, stopped, rss, n_train, cpu_end, steps = marks["fit_end"]
    ends = [(start, cpu_start)] + [(wall, cpu) for wall, _, cpu in epochs]
    if steps is not None:
        speed = Rate(steps[0] / steps[1], steps[0] / steps[2])
    else:  # a single training batch: only the epoch clock is left
        speed = Rate(n_train / (ends[-1][0] - start), n_train / (ends[-1][1] - cpu_start))
    if epochs:
        epoch = Row(
            "train",
            f"{job['model']}: epoch time",
            statistics.fmean(b[0] - a[0] for a, b in zip(ends, ends[1:])),
            "s",
            f"mean of {len(epochs)} epoch(s), dev scoring included",
            cpu=statistics.fmean(b[1] - a[1] for a, b in zip(ends, ends[1:])),
        )
    else:
        epoch = Row(
            "train",
            f"{job['model']}: epoch time",
            n_train / speed.wall,
            "s",
            "estimated from the throughput: the first epoch did not finish",
            cpu=n_train / speed.cpu,
        )
    name = job["model"]
    rows = [
        Row("train", f"{name}: setup before epoch 1 (vocabulary, word2vec)", start, "s", cpu=cpu_start - cpu0),
        _rate_row(
            "train",
            f"{name}: training throughput",
            speed,
            f"{steps[0] if steps else n_train:,} posts of training batches (dev scoring excluded)",
        ),
        epoch,
        Row(
            "train",
            f"{name}: best dev F1@1",
            max((e[1] for e in epochs), default=0.0),
            "",
            f"fit {stopped} after {fit_s:.0f} s, {len(epochs)} epoch(s)",
        ),
        Row(
            "train",
            f"{name}: wall time to fastText's dev F1@1",
            reached[0] if reached else fit_s,
            "s",
            "from the fit call" if reached else "not reached",
            bound="" if reached else ">",
            cpu=(reached[1] if reached else cpu_end) - cpu0,
        ),
        Row("memory", f"{name}: peak RSS, training", rss, "MB", "fit in a fresh process"),
    ]
    return rows, speed


def _rate_row(group: str, measure: str, r: Rate, note: str = "") -> Row:
    return Row(group, measure, r.wall, "posts/s", note, cpu=r.cpu)


def _ratio_row(group: str, measure: str, a: Rate, b: Rate) -> Row:
    return Row(group, measure, a.wall / b.wall, "x", cpu=a.cpu / b.cpu)


def bench_serve(job: dict, plan: Plan, train: Rate) -> list[Row]:
    """Inference, memory and FLOP rows from the serving child."""
    with child(_serve_child, job, time.monotonic() + 40 * plan.seconds + 300) as next_event:
        out = next_event()[1]
    name, n, threads = job["model"], len(job["texts"]), job["threads"]
    rows = [
        _rate_row("infer", f"{name}: batch, tokens in", out["acnn_tokens"], f"{n:,} dev posts, k={K}"),
        _rate_row("infer", "fastText predict: batch, tokens in", out["ft_tokens"]),
        _ratio_row("infer", f"{name} / fastText predict, tokens in", out["acnn_tokens"], out["ft_tokens"]),
        _rate_row(
            "infer",
            "fasttext recommender: batch, tokens in",
            out["ft_rec_tokens"],
            "rank_docs: scores for its top_n labels, then top-k",
        ),
        _rate_row("infer", f"{name}: batch, text in", out["acnn_text"], "tokenised in batches of 1,000"),
        _rate_row("infer", "fastText predict: batch, text in", out["ft_text"], "same tokenizer"),
        _ratio_row("infer", f"{name} / fastText predict, text in", out["acnn_text"], out["ft_text"]),
    ]
    for what in ("text", "tokens"):
        for who, key in ((name, "acnn"), ("fastText predict", "ft")):
            median, p95 = out[f"{key}_latency_{what}"]
            rows.append(Row("latency", f"{who}: one post, {what} in", median, "ms", f"median; p95 {p95:.2f} ms"))
    rows.append(Row("memory", f"{name}: peak RSS, serving", out["serve_rss_mb"], "MB", "load + the runs above"))
    rows += _flop_rows(name, out, train, threads)
    for t, (batch, single) in out["acnn_threads"].items():
        rows.append(_rate_row("sweep", f"{name}: batch, tokens in, {t} thread(s)", batch))
        rows.append(Row("sweep", f"{name}: one post, tokens in, {t} thread(s)", single, "ms", "median"))
    for key, r in out["batch_sizes"].items():
        bs, way = key.split("|")
        rows.append(_rate_row("sweep", f"{name} network: batch of {bs}, {way}", r, "net_ logits only"))
    return rows


def _flop_rows(name: str, out: dict, train: Rate, threads: int) -> list[Row]:
    """Achieved FLOP/s against the matmul peak: wall-clock on `threads` threads, and per CPU second
    against one thread's peak (the `cpu` column), which the machine's load moves less."""
    cfg = dataclasses.make_dataclass("Cfg", out["config"])(**out["config"])
    fwd = acnn_flops(cfg, out["n_labels"], out["mean_tokens"])
    fwd_infer = acnn_flops(cfg, out["n_labels"], out["mean_tokens"], inference=True)
    peak, peak1 = out["matmul_gflops"][threads], out["matmul_gflops"][1]
    train_wall, train_cpu = 3 * fwd * train.wall / 1e9, 3 * fwd * train.cpu / 1e9
    infer_wall, infer_cpu = fwd_infer * out["acnn_tokens"].wall / 1e9, fwd_infer * out["acnn_tokens"].cpu / 1e9
    rows = [
        Row(
            "flops",
            f"matmul peak, {t} thread(s)",
            value,
            "GFLOP/s",
            "2048x2048 float32, best of runs" + ("; the reference of the per-CPU-s fractions" if t == 1 else ""),
        )
        for t, value in out["matmul_gflops"].items()
    ]
    return rows + [
        Row(
            "flops",
            f"{name}: forward per post",
            fwd / 1e6,
            "MFLOP",
            f"{out['mean_tokens']:.1f} words, softmax over {out['n_labels']:,} hashtags",
        ),
        Row(
            "flops",
            f"{name}: forward per post, inference",
            fwd_infer / 1e6,
            "MFLOP",
            "the window products read from tables",
        ),
        Row(
            "flops",
            f"{name}: training, achieved",
            train_wall,
            "GFLOP/s",
            f"{train_wall / peak:.1%} of peak (cpu: {train_cpu / peak1:.1%}); 3x forward per post",
            cpu=train_cpu,
        ),
        Row(
            "flops",
            f"{name}: inference, achieved",
            infer_wall,
            "GFLOP/s",
            f"{infer_wall / peak:.1%} of peak (cpu: {infer_cpu / peak1:.1%})",
            cpu=infer_cpu,
        ),
    ]


# ---------------------------------------------------------------------------- entry points


def bench(
    data: str | Path,
    en_data: str | Path,
    *,
    quick: bool = False,
    model: str = "acnn",
    params: dict[str, Any] | None = None,
    threads: int = 2,
    train_budget: float | None = None,
    out: str | Path | None = None,
) -> list[Row]:
    """Run every measurement once and return the rows; with `out`, also write bench.json and bench.md there.

    `params` override the model's hyperparameters (on top of the quick plan's in quick mode);
    `train_budget` caps the model's fit in seconds (default 480, quick 60).
    """
    out = None if out is None else claim_output_dir(out, "bench", inputs=[data, en_data])  # before the work
    plan = QUICK if quick else FULL
    plan = dataclasses.replace(
        plan, acnn={**plan.acnn, **(params or {})}, train_budget=train_budget or plan.train_budget
    )
    machine = {
        "cpus": os.cpu_count(),
        "threads": threads,
        "load_start": os.getloadavg(),
        "quick": quick,
        "data": str(data),
        "en_data": str(en_data),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    train_posts = load_split(data, "train")[: plan.n_train]
    dev_posts = load_split(data, "dev")[: plan.n_dev]
    en_texts = [p.text for p in load_split(en_data, "train")[: plan.n_tokenize]]
    rows = bench_tokenize([p.text for p in train_posts], en_texts, threads, plan)
    saved_cache = os.environ.get("HASHREC_CACHE")
    with tempfile.TemporaryDirectory(prefix="hashrec-bench-") as tmp:
        # A fresh cache: the model's word2vec is trained, not read back; the tokens are cached
        # here first (as fastText needs them too), so neither fit is charged for tokenisation.
        os.environ["HASHREC_CACHE"] = tmp
        try:
            rows += _bench_models(Path(tmp), data, train_posts, dev_posts, plan, model, threads)
        finally:
            if saved_cache is None:
                os.environ.pop("HASHREC_CACHE", None)
            else:
                os.environ["HASHREC_CACHE"] = saved_cache
    machine["load_end"] = os.getloadavg()
    if out is not None:
        write_report(out, rows, machine)
    return rows


def _bench_models(
    tmp: Path, data: str | Path, train_posts: list, dev_posts: list, plan: Plan, model: str, threads: int
) -> list[Row]:
    from hashrec.models import create

    tokenize_many([p.text for p in train_posts], workers=threads)  # into the run's cache, for both fits
    tokenize_many([p.text for p in dev_posts], workers=threads)
    ft = create("fasttext", **{"threads": threads, **plan.fasttext})
    t, c = time.perf_counter(), cpu_seconds()
    ft.fit(train_posts)
    ft_seconds, ft_cpu = time.perf_counter() - t, cpu_seconds() - c
    target = ft.evaluate(dev_posts, ks=(1,))[1].f1
    ft.save(tmp / "fasttext")
    rows = [
        Row(
            "train",
            f"fastText: training ({ft.config.epoch} epochs, {threads} threads)",
            ft_seconds,
            "s",
            f"{len(train_posts):,} posts; the `fasttext` recommender, loss {ft.config.loss}, "
            f"wordNgrams {ft.config.word_ngrams}",
            cpu=ft_cpu,
        ),
        Row("train", "fastText: dev F1@1", target, "", f"{len(dev_posts):,} dev posts"),
    ]
    job = {
        "model": model,
        "params": plan.acnn,
        "data": str(data),
        "n_train": plan.n_train,
        "n_dev": plan.n_dev,
        "threads": threads,
        "budget": plan.train_budget,
        "target_f1": target,
        "stop_at_target": True,
        "model_dir": str(tmp / model),
    }
    train_rows, train = bench_train(job)
    texts = [p.text for p in dev_posts][: plan.n_infer]
    serve_job = {
        "model": model,
        "model_dir": job["model_dir"],
        "fasttext": str(tmp / "fasttext"),
        "texts": texts,
        "threads": threads,
        "plan": dataclasses.asdict(plan),
    }
    return rows + train_rows + bench_serve(serve_job, plan, train)


def _number(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:.3g}"


def format_rows(rows: Sequence[Row]) -> str:
    """A Markdown table of the rows."""
    lines = [
        "| group | measure | value | unit | per CPU-s | note | load (1 min) |",
        "| --- | --- | ---: | --- | ---: | --- | ---: |",
    ]
    for r in rows:
        cpu = "" if r.cpu is None else _number(r.cpu)
        lines.append(
            f"| {r.group} | {r.measure} | {r.bound}{_number(r.value)} | {r.unit} | {cpu} | {r.note} | {r.load:.2f} |"
        )
    return "\n".join(lines)


def write_report(out: Path, rows: Sequence[Row], machine: dict[str, Any]) -> None:
    """`out/bench.json` (machine state + rows) and `out/bench.md` (the same as a table)."""
    write_json(out / "bench.json", {"machine": machine, "rows": [dataclasses.asdict(r) for r in rows]})
    header = (
        f"Machine: {machine['cpus']} CPUs, {machine['threads']} threads used; load average "
        f"(1, 5, 15 min) {tuple(round(x, 2) for x in machine['load_start'])} at the start, "
        f"{tuple(round(x, 2) for x in machine['load_end'])} at the end; started {machine['started']}.\n\n"
    )
    with atomic_open(out / "bench.md", "w", encoding="utf-8") as f:
        f.write(header + format_rows(rows) + "\n")
