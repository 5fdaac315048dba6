"""`hashrec compare`: train and score several recommenders under one protocol (the paper's Table 1).

Every method is trained on DATA/train (DATA/dev for its own model selection), scored on
DATA/test with Eq. 11 (hashrec.metrics) at k = 1..5, and timed. Outputs, each written
atomically and rewritten after every method so that a long run can be read while it goes:
OUT/table.md (P, R, F1 at k = 1, the paper's F1 where the method is in Table 1, times),
OUT/scores.csv (k = 1..5), OUT/f1_at_k.png (F1 against k), OUT/results.json (everything,
read back by `reuse` for the train times of models it does not retrain), OUT/models/NAME.
"""

from __future__ import annotations

import csv
import json
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hashrec import api
from hashrec.data import load_split
from hashrec.errors import ConfigError
from hashrec.metrics import Scores
from hashrec.models import MODELS
from hashrec.store import atomic_open, claim_output_dir, write_json

# F1@1 on the paper's Weibo crawl (Gong & Zhang 2016, Table 1); docs/paper.md §6.
PAPER_F1 = {
    "nb": 0.203,
    "lda": 0.062,
    "ibm1": 0.220,
    "topicwa": 0.292,
    "ttm": 0.364,
    "cnn": 0.373,
    "attention": 0.369,
    "acnn": 0.398,
}
KS = (1, 2, 3, 4, 5)


@dataclass
class Result:
    """One method's outcome: its scores at each k, or the error that stopped it."""

    name: str
    scores: dict[int, Scores] = field(default_factory=dict)
    train_s: float | None = None
    train_cpu_s: float | None = None  # CPU seconds of this process: wall time misleads on a shared machine
    eval_s: float | None = None
    reused: bool = False
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "train_s": self.train_s,
            "train_cpu_s": self.train_cpu_s,
            "eval_s": self.eval_s,
            "reused": self.reused,
            "error": self.error,
            "scores": {str(k): s.as_dict() for k, s in self.scores.items()},
        }


def split_params(overrides: dict[str, Any], models: Sequence[str]) -> dict[str, dict[str, Any]]:
    """`{"nb.alpha": 0.5}` -> `{"nb": {"alpha": 0.5}}`; every key must name a compared model."""
    out: dict[str, dict[str, Any]] = {m: {} for m in models}
    for key, value in overrides.items():
        model, dot, option = key.partition(".")
        if not dot or model not in out:
            raise ConfigError(
                f"--set {key}: expected MODEL.KEY=VALUE with MODEL one of {', '.join(models)}, e.g. --set nb.alpha=0.5"
            )
        out[model][option] = value
    return out


def check_models(models: Sequence[str]) -> list[str]:
    models = list(dict.fromkeys(models))
    unknown = [m for m in models if m not in MODELS]
    if unknown or not models:
        raise ConfigError(
            f"unknown model(s) {', '.join(unknown) or '(none given)'}; registered models are: {', '.join(MODELS)}"
        )
    return models


def run_one(
    name: str,
    data: Path,
    out: Path,
    params: dict[str, Any],
    reuse: bool,
    previous: dict[str, Any],
    test: list,
    log: Callable[[str], None],
) -> Result:
    """Train (or load with `reuse`) and score one method; an exception becomes `Result.error`."""
    result = Result(name)
    path = out / "models" / name
    try:
        start, cpu = time.perf_counter(), time.process_time()
        if reuse and (path / "model.json").is_file():
            model = api.load(path)
            result.reused = True
            result.train_s, result.train_cpu_s = (previous.get(name, {}).get(key) for key in ("train_s", "train_cpu_s"))
            log(f"  {name}: reusing {path}")
        else:
            model = api.train(name, data, path, params=params)
            result.train_s, result.train_cpu_s = time.perf_counter() - start, time.process_time() - cpu
            log(f"  {name}: trained in {result.train_s:.1f} s ({result.train_cpu_s:.1f} s CPU)")
        start = time.perf_counter()
        result.scores = model.evaluate(test, KS)
        result.eval_s = time.perf_counter() - start
        log(f"  {name}: F1@1 {result.scores[1].f1:.4f}, scored {len(test):,} test posts in {result.eval_s:.1f} s")
    except Exception as e:  # one failing method must not stop the comparison
        result.error = f"{type(e).__name__}: {e}"
        log(f"  {name}: FAILED ({result.error})\n" + traceback.format_exc(limit=3))
    return result


def compare(
    data: str | Path,
    models: Sequence[str],
    out: str | Path,
    *,
    overrides: dict[str, Any] | None = None,
    reuse: bool = False,
    log: Callable[[str], None] = print,
) -> list[Result]:
    """Train and score each of `models` on split directory `data`; write the report into `out`.

    `overrides` are `MODEL.KEY: value` hyperparameters; with `reuse`, a model already saved in
    OUT/models/NAME is loaded instead of retrained. `out` must be new, empty or a folder compare made.
    Returns the results in the order given.
    """
    models = check_models(models)
    params = split_params(overrides or {}, models)
    data, out = Path(data), claim_output_dir(out, "compare", inputs=[data])
    test = load_split(data, "test")
    previous_file = out / "results.json"
    previous = (
        json.loads(previous_file.read_text(encoding="utf-8")).get("methods", {})
        if reuse and previous_file.is_file()
        else {}
    )
    results: list[Result] = []
    for i, name in enumerate(models, 1):
        log(f"[{i}/{len(models)}] {name}")
        results.append(run_one(name, data, out, params[name], reuse, previous, test, log))
        write_report(results, data, out, n_test=len(test))
    return results


# ---------------------------------------------------------------------------- report


def _seconds(s: float | None) -> str:
    if s is None:
        return "—"
    return f"{s:.0f} s" if s < 600 else f"{s / 60:.1f} min"


def table_md(results: Sequence[Result], data: Path, n_test: int) -> str:
    """Table 1 of the paper: P, R, F1 at k = 1, beside the paper's F1 (a different Weibo crawl)."""
    lines = [
        f"# Comparison on `{data}` (test: {n_test:,} posts; Eq. 11, k = 1)",
        "",
        "| method | P@1 | R@1 | F1@1 | paper F1@1 | train | train CPU | test |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        paper = f"{PAPER_F1[r.name]:.3f}" if r.name in PAPER_F1 else "—"
        if r.error:
            lines.append(f"| {r.name} | failed | | | {paper} | | | |")
            continue
        s = r.scores[1]
        train = _seconds(r.train_s) + (" (reused)" if r.reused else "")
        lines.append(
            f"| {r.name} | {s.precision:.4f} | {s.recall:.4f} | {s.f1:.4f} | {paper} | "
            f"{train} | {_seconds(r.train_cpu_s)} | {_seconds(r.eval_s)} |"
        )
    failed = [r for r in results if r.error]
    if failed:
        lines += ["", "Failed:"] + [f"- {r.name}: {r.error}" for r in failed]
    lines += [
        "",
        "Paper numbers are on the paper's unpublished Weibo crawl: compare orderings, not values. "
        "Train time (wall and CPU of the main process, threads included) covers fitting and scoring the dev split.",
    ]
    return "\n".join(lines) + "\n"


def write_report(results: Sequence[Result], data: Path, out: Path, n_test: int) -> None:
    out.mkdir(parents=True, exist_ok=True)
    write_json(
        out / "results.json", {"data": str(data), "n_test": n_test, "methods": {r.name: r.as_dict() for r in results}}
    )
    with atomic_open(out / "table.md", "w", encoding="utf-8") as f:
        f.write(table_md(results, data, n_test))
    with atomic_open(out / "scores.csv", "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["method", "k", "precision", "recall", "f1", "n_correct", "n_posts"])
        for r in results:
            for k, s in r.scores.items():
                w.writerow([r.name, k, f"{s.precision:.6f}", f"{s.recall:.6f}", f"{s.f1:.6f}", s.n_correct, s.n_posts])
    plot_at_k(
        {r.name: {k: s.as_dict() for k, s in r.scores.items()} for r in results if r.scores},
        out / "f1_at_k.png",
        title=f"F1@k on {data.name}",
    )


def plot_at_k(
    curves: dict[str, dict[int, dict[str, float]]], path: Path, title: str, metrics: Sequence[str] = ("f1",)
) -> None:
    """One panel per metric (precision, recall, f1) against k, a line per method (the paper's Figure 2).

    `curves` maps a method's label to {k: {metric: value}}.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(metrics), figsize=(5.5 * len(metrics), 4), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        for label, at_k in curves.items():
            ks = sorted(at_k)
            ax.plot(ks, [at_k[k][metric] for k in ks], marker="o", label=label)
        ax.set(xlabel="k (hashtags recommended)", ylabel=f"{metric}@k", xticks=list(KS))
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png", dpi=120)
    plt.close(fig)
