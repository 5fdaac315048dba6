"""The paper's Tables 1-4 (PAPER.md §2 "Ablations") and hashrec's own choices, on the reference splits.

Each run trains on train (dev for early stopping), scores test with Eq. 11 at k = 1..5 and
appends one JSON line to --results; a run already there is skipped, so the script can be
stopped and restarted. `--report` turns the lines into Markdown tables (mean ± std over seeds).

    python benchmarks/acnn_tables.py --bench weibo --rows table1 --seeds 0 1 2
    python benchmarks/acnn_tables.py --report > docs/results/acnn_tables.md
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from hashrec.data import load_split
from hashrec.models import create

SPLITS = Path(__file__).resolve().parents[2] / "shared" / "benchmarks"
# group -> [(row label, registry name, params)]; the default acnn row is soft attention,
# soft target, non-static word2vec, windows (1, 2, 3), h = 5. The results in docs/results/acnn.md
# were run while "pairs" was the default: their {"epochs": 2} rows are pairs, {"target": "soft"} soft.
ROWS: dict[str, list[tuple[str, str, dict]]] = {
    "table1": [("CNN", "cnn", {}), ("Attention-5", "attention", {}), ("CNN+Attention-5", "acnn", {})],
    "table2": [(f"{label} static", name, {"static_embeddings": True})
               for label, name in (("CNN", "cnn"), ("Attention-5", "attention"), ("CNN+Attention-5", "acnn"))],
    "table3": [(f"windows {w}", "acnn", {"windows": w}) for w in ((1,), (2,), (3,), (1, 2))],
    "table4": [(f"{label}-{h}", name, {"h": h}) for name, label in (("attention", "Attention"),
                                                                 ("acnn", "CNN+Attention")) for h in (1, 3, 7)],
    "attention": [("hard attention (paper's 0/1 mask)", "acnn", {"attention": "hard"})],
    "target": [("pairs target (the paper's J)", "acnn", {"target": "pairs"})],
    "optimizer": [("AdaDelta", "acnn", {"optimizer": "adadelta"})],
}


def run_one(bench: str, name: str, params: dict, seed: int, n_train: int | None, n_dev: int | None) -> dict:
    """Train on the first n_train training posts (early stopping on the first n_dev dev posts), score all of test."""
    data = SPLITS / bench
    train, dev, test = (load_split(data, part) for part in ("train", "dev", "test"))
    train, dev = train[:n_train], dev[:n_dev]
    start = time.time()
    model = create(name, **params, seed=seed).fit(train, dev)
    seconds = time.time() - start
    scores = model.evaluate(test)
    return {"bench": bench, "name": name, "params": params, "seed": seed, "n_train": len(train),
            "n_dev": len(dev), "limits": [n_train, n_dev], "fit_s": round(seconds, 1),
            "epochs_run": len(model.history_), "history": model.history_,
            "test": {k: s.as_dict() for k, s in scores.items()}}


def key(r: dict) -> str:
    return json.dumps([r["bench"], r["name"], r["params"], r["seed"], r["limits"]], sort_keys=True)


def report(results: list[dict]) -> str:
    """One Markdown table per benchmark: P/R/F1 at k = 1..5, mean ± std over seeds."""
    groups: dict[tuple, list[dict]] = {}
    for r in results:
        bench = f"{r['bench']} (train {r['n_train']:,}, dev {r['n_dev']:,})"
        groups.setdefault((bench, r["name"], json.dumps(r["params"], sort_keys=True)), []).append(r)
    ks = ["1", "2", "3", "4", "5"]
    lines = []
    for bench in sorted({g[0] for g in groups}):
        lines += [f"\n### {bench}\n", "| model | params | seeds | epochs | s/epoch | "
                  + " | ".join(f"P@{k} | R@{k} | F1@{k}" for k in ks) + " |",
                  "| --- " * (5 + 3 * len(ks)) + "|"]
        for (b, name, params), rs in sorted(groups.items()):
            if b != bench:
                continue
            cells = []
            for k in ks:
                for m in ("precision", "recall", "f1"):
                    v = np.array([r["test"][k][m] for r in rs])
                    cells.append(f"{v.mean():.4f} ± {v.std():.4f}" if len(v) > 1 else f"{v[0]:.4f}")
            per_epoch = np.mean([r["fit_s"] / r["epochs_run"] for r in rs])
            epochs = "/".join(str(r["epochs_run"]) for r in rs)
            lines.append(f"| {name} | {params} | {len(rs)} | {epochs} | {per_epoch:.0f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bench", choices=["weibo", "tweeteval"], default="weibo")
    p.add_argument("--rows", nargs="+", choices=list(ROWS), default=["table1"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override every row, e.g. epochs=5")
    p.add_argument("--n-train", type=int, default=None, help="use the first N training posts (default all)")
    p.add_argument("--n-dev", type=int, default=None, help="early-stop on the first N dev posts (default all)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads; 1 on a shared CPU (2 threads contended were 5x slower per step)")
    p.add_argument("--results", type=Path, default=Path("runs/acnn/results.jsonl"))
    p.add_argument("--report", action="store_true", help="print the Markdown tables and exit")
    a = p.parse_args()
    results = [json.loads(line) for line in a.results.read_text().splitlines()] if a.results.is_file() else []
    if a.report:
        print(report(results))
        return
    from hashrec.config import parse_overrides

    torch.set_num_threads(a.threads)
    done = {key(r) for r in results}
    extra = parse_overrides(a.set)
    for group in a.rows:
        for seed in a.seeds:
            for _, name, params in ROWS[group]:
                params = {**params, **extra}
                todo = {"bench": a.bench, "name": name, "params": params, "seed": seed,
                        "limits": [a.n_train, a.n_dev]}
                if key(todo) in done:
                    continue
                r = run_one(a.bench, name, params, seed, a.n_train, a.n_dev)
                a.results.parent.mkdir(parents=True, exist_ok=True)
                with open(a.results, "a", encoding="utf-8") as f:
                    f.write(json.dumps(r, ensure_ascii=False) + "\n")
                done.add(key(r))
                print(f"{a.bench} {name} {params} seed {seed}: F1@1 {r['test'][1]['f1']:.4f} "
                      f"({r['epochs_run']} epochs, {r['fit_s']:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
