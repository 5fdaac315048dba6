"""`hashrec experiment`: the paper's Tables 1-4 and hashrec's own ablations, mean ± std over seeds.

Each table is a list of rows (a label, a registry name, the hyperparameters that differ from the
defaults). Every (row, seed) trains on DATA/train (DATA/dev for early stopping), is scored on all
of DATA/test with Eq. 11 at k = 1..5 and appended as one JSON line to OUT/results.jsonl. A run
already in that file is not repeated, so a stopped experiment resumes where it was, and a row
shared by two tables (Table 1's acnn is Table 3's windows (1, 2, 3)) is trained once. After every
run OUT/TABLE.md (P, R, F1 at k = 1..5, mean ± std), OUT/TABLE.csv and OUT/TABLE.png (P, R and
F1 against k: the paper's Figure 2) are rewritten from the records.

Table 1 includes the practical anchors (fastText, TF-IDF kNN) so that they are trained and scored
in the same run and on the same splits as the networks.
"""

from __future__ import annotations

import csv
import hashlib
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hashrec.compare import KS, PAPER_F1, plot_at_k
from hashrec.data import load_split
from hashrec.errors import ConfigError
from hashrec.models import MODELS, create, model_class
from hashrec.store import atomic_open, claim_output_dir

Row = tuple[str, str, dict[str, Any]]
NETS = (("CNN", "cnn"), ("Attention", "attention"), ("CNN+Attention", "acnn"))
NETS_NAMES = {name for _, name in NETS}
H = "-5"  # the paper names the attention rows by their window h
TABLES: dict[str, list[Row]] = {
    "table1": [("fastText (anchor)", "fasttext", {}), ("TF-IDF kNN (anchor)", "knn", {})]
    + [(label + H * (name != "cnn"), name, {}) for label, name in NETS],
    "table2": [
        (f"{label}{H * (name != 'cnn')} {kind}", name, {"static_embeddings": static})
        for label, name in NETS
        for kind, static in (("static", True), ("non-static", False))
    ],
    "table3": [
        (f"CNN+Attention-5, windows {', '.join(map(str, w))}", "acnn", {"windows": w})
        for w in ((1,), (2,), (3,), (1, 2), (1, 2, 3))
    ],
    "table4": [(f"{label}-{h}", name, {"h": h}) for label, name in NETS[1:] for h in (1, 3, 5, 7)],
    "ablations": [
        ("CNN+Attention-5 (defaults: soft attention, soft target, Adam)", "acnn", {}),
        ("hard attention (the paper's 0/1 mask)", "acnn", {"attention": "hard"}),
        ("pairs target (the paper's J)", "acnn", {"target": "pairs"}),
        ("AdaDelta (the paper's optimiser)", "acnn", {"optimizer": "adadelta"}),
        ("random initial embeddings", "acnn", {"embeddings": "random"}),
    ],
}


def _canonical(params: dict[str, Any]) -> str:
    return json.dumps({k: list(v) if isinstance(v, tuple) else v for k, v in params.items()}, sort_keys=True)


def run_key(name: str, params: dict[str, Any], seed: int | None, limits: Sequence[int | None]) -> str:
    """What makes two runs the same: model, hyperparameters, seed and the slice of the data."""
    return json.dumps([name, _canonical(params), seed, list(limits)])


def seeds_for(name: str, seeds: Sequence[int]) -> list[int | None]:
    """A deterministic model (no `seed` hyperparameter) runs once, whatever the seeds."""
    fields = {f.name for f in model_class(name).Config.__dataclass_fields__.values()}
    return list(seeds) if "seed" in fields else [None]


def run_one(
    data: Path, name: str, params: dict[str, Any], seed: int | None, limits: Sequence[int | None], save: Path | None
) -> dict[str, Any]:
    """Fit on (the first n_train of) train with (the first n_dev of) dev, score all of test: one record."""
    n_train, n_dev = limits
    train, dev, test = (load_split(data, part) for part in ("train", "dev", "test"))
    train, dev = train[:n_train], dev[:n_dev]
    model = create(name, **params, **({} if seed is None else {"seed": seed}))
    start, cpu = time.perf_counter(), time.process_time()
    model.fit(train, dev)
    fit_s, fit_cpu_s = time.perf_counter() - start, time.process_time() - cpu
    if save is not None:
        model.save(save)
    history = getattr(model, "history_", [])
    return {
        "key": run_key(name, params, seed, limits),
        "name": name,
        "params": json.loads(_canonical(params)),
        "seed": seed,
        "n_train": len(train),
        "n_dev": len(dev),
        "n_test": len(test),
        "fit_s": round(fit_s, 1),
        "fit_cpu_s": round(fit_cpu_s, 1),
        "epochs_run": len(history) or None,
        "history": history,
        "test": {str(k): s.as_dict() for k, s in model.evaluate(test, KS).items()},
    }


def read_records(path: Path) -> dict[str, dict[str, Any]]:
    if not path.is_file():
        return {}
    records = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        try:
            r = json.loads(line)
            records[r["key"]] = r
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise ConfigError(
                f"{path}, line {n}: not an experiment record ({e}); remove the line to rerun that run"
            ) from None
    return records


def run(
    tables: Sequence[str],
    data: str | Path,
    out: str | Path,
    *,
    seeds: Sequence[int] = (0, 1, 2),
    overrides: dict[str, Any] | None = None,
    n_train: int | None = None,
    n_dev: int | None = None,
    save_models: bool = False,
    log: Callable[[str], None] = print,
) -> dict[str, list[dict[str, Any]]]:
    """Run every (row, seed) of `tables` not yet in OUT/results.jsonl; rewrite each table's report after each run.

    `overrides` apply to every network row (e.g. `{"epochs": 5}`), not to the anchors. Returns,
    per table, the records of its rows.
    """
    unknown = [t for t in tables if t not in TABLES]
    if unknown or not tables:
        raise ConfigError(f"unknown table(s) {', '.join(unknown) or '(none given)'}; choose from {', '.join(TABLES)}")
    data, out = Path(data), claim_output_dir(out, "experiment", inputs=[data])  # new, empty or an experiment's
    results = out / "results.jsonl"
    records = read_records(results)
    limits = (n_train, n_dev)
    for table in tables:
        plan = _plan(TABLES[table], seeds, overrides or {}, limits)
        for i, (label, name, params, seed, key) in enumerate(plan, 1):
            if key in records:
                continue
            log(f"[{table} {i}/{len(plan)}] {label}, seed {seed}")
            save = (
                out / "models" / f"{name}-{hashlib.sha256(key.encode()).hexdigest()[:8]}-seed{seed}"
                if save_models
                else None
            )
            record = run_one(data, name, params, seed, limits, save)
            with open(results, "a", encoding="utf-8") as f:  # one line per run: a kill loses at most the run
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
            records[key] = record
            log(
                f"  F1@1 {record['test']['1']['f1']:.4f} (fit {record['fit_s']:.0f} s, "
                f"{record['epochs_run'] or '-'} epochs)"
            )
            write_table(table, data, out, records, seeds, overrides or {}, limits)
        write_table(table, data, out, records, seeds, overrides or {}, limits)
    return {
        t: [records[key] for *_, key in _plan(TABLES[t], seeds, overrides or {}, limits) if key in records]
        for t in tables
    }


def _row_params(name: str, params: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """The row's hyperparameters with the overrides for networks, less those equal to the defaults.

    Dropping defaults makes Table 3's windows (1, 2, 3) the same run as Table 1's acnn.
    """
    fields = model_class(name).Config.__dataclass_fields__
    defaults = {k: MODELS[name][1].get(k, f.default) for k, f in fields.items()}
    if name in NETS_NAMES:
        params = {**params, **{k: v for k, v in overrides.items() if k in fields}}
    return {k: v for k, v in params.items() if _canonical({k: v}) != _canonical({k: defaults.get(k)})}


def _plan(
    rows: Sequence[Row], seeds: Sequence[int], overrides: dict[str, Any], limits: Sequence[int | None]
) -> list[tuple[str, str, dict[str, Any], int | None, str]]:
    """(label, name, params, seed, run key) of every run the rows ask for, rows in order, seeds within."""
    out = []
    for label, name, params in rows:
        params = _row_params(name, params, overrides)
        out += [(label, name, params, seed, run_key(name, params, seed, limits)) for seed in seeds_for(name, seeds)]
    return out


# ---------------------------------------------------------------------------- reports


def summarise(
    rows: Sequence[Row],
    records: dict[str, dict[str, Any]],
    seeds: Sequence[int],
    overrides: dict[str, Any],
    limits: Sequence[int | None],
) -> list[dict[str, Any]]:
    """Per row with at least one finished run: label, name, runs, and mean/std of P, R, F1 at each k."""
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {}  # (label, name) -> its finished runs
    for label, name, _, _, key in _plan(rows, seeds, overrides, limits):
        rs = runs.setdefault((label, name), [])
        if key in records:
            rs.append(records[key])
    out = []
    for (label, name), rs in runs.items():
        if not rs:
            continue
        stats = {
            k: {m: _mean_std([r["test"][str(k)][m] for r in rs]) for m in ("precision", "recall", "f1")} for k in KS
        }
        per_epoch = [r["fit_s"] / r["epochs_run"] for r in rs if r.get("epochs_run")]
        out.append(
            {
                "label": label,
                "name": name,
                "runs": rs,
                "stats": stats,
                "fit_s": float(np.mean([r["fit_s"] for r in rs])),
                "s_per_epoch": float(np.mean(per_epoch)) if per_epoch else None,
                "epochs": "/".join(str(r["epochs_run"]) for r in rs if r.get("epochs_run")) or "—",
            }
        )
    return out


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    return float(np.mean(values)), float(np.std(values))


def _cell(mean_std: tuple[float, float], n: int) -> str:
    return f"{mean_std[0]:.4f} ± {mean_std[1]:.4f}" if n > 1 else f"{mean_std[0]:.4f}"


def table_md(table: str, data: Path, summary: Sequence[dict[str, Any]]) -> str:
    if not summary:
        return f"# {table} on `{data}`\n\nNo finished runs yet.\n"
    first = summary[0]["runs"][0]
    lines = [
        f"# {table} on `{data}` (train {first['n_train']:,}, dev {first['n_dev']:,}, "
        f"test {first['n_test']:,}; Eq. 11, mean ± std over seeds)",
        "",
        "| row | seeds | epochs | fit | s/epoch | paper F1@1 | " + " | ".join(f"F1@{k}" for k in KS) + " | P@1 | R@1 |",
        "|---" * (8 + len(KS)) + "|",
    ]
    for s in summary:
        n = len(s["runs"])
        paper = f"{PAPER_F1[s['name']]:.3f}" if table == "table1" and s["name"] in PAPER_F1 else "—"
        per_epoch = f"{s['s_per_epoch']:.0f} s" if s["s_per_epoch"] else "—"
        lines.append(
            f"| {s['label']} | {n} | {s['epochs']} | {s['fit_s']:.0f} s | {per_epoch} | {paper} | "
            + " | ".join(_cell(s["stats"][k]["f1"], n) for k in KS)
            + f" | {_cell(s['stats'][1]['precision'], n)} | {_cell(s['stats'][1]['recall'], n)} |"
        )
    lines += [
        "",
        "fit: wall seconds of training, dev scoring included (mean over seeds). "
        "Per-run histories (loss, dev F1@1 per epoch) are in results.jsonl.",
    ]
    return "\n".join(lines) + "\n"


def write_table(
    table: str,
    data: Path,
    out: Path,
    records: dict[str, dict[str, Any]],
    seeds: Sequence[int],
    overrides: dict[str, Any],
    limits: Sequence[int | None],
) -> None:
    summary = summarise(TABLES[table], records, seeds, overrides, limits)
    with atomic_open(out / f"{table}.md", "w", encoding="utf-8") as f:
        f.write(table_md(table, data, summary))
    with atomic_open(out / f"{table}.csv", "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["row", "model", "seeds", "k", "precision", "precision_std", "recall", "recall_std", "f1", "f1_std"])
        for s in summary:
            for k in KS:
                st = s["stats"][k]
                w.writerow(
                    [s["label"], s["name"], len(s["runs"]), k]
                    + [f"{x:.6f}" for m in ("precision", "recall", "f1") for x in st[m]]
                )
    if summary:
        curves = {
            s["label"]: {k: {m: s["stats"][k][m][0] for m in ("precision", "recall", "f1")} for k in KS}
            for s in summary
        }
        plot_at_k(
            curves,
            out / f"{table}.png",
            title=f"{table} on {data.name} (mean over seeds)",
            metrics=("precision", "recall", "f1"),
        )
