"""Which streaming signals help? Dev and test F1@1 of kNN votes mixed with trending and author signals.

Reads the candidates of benchmarks/stream_candidates.py (kNN votes per post as of its chunk) and the stream,
adds for each post, as of its chunk (posts before it only): the author's own earlier hashtags, scored by
ACT-R's base-level learning sum_j (1 + age_j)^-d over the author's uses j of the hashtag (age in whole days;
Kowald et al. WWW 2017), and the hashtags' shares of the last N posts (trending). The score of a
candidate is knn + beta x author + gamma x trend, each a distribution over its candidates. beta, gamma,
d, N and the kNN setting are chosen on dev (the first --dev posts); test F1@1 is printed for the choice,
split into posts whose gold hashtags had appeared before (seen) and not (new).

    python benchmarks/stream_tune.py --candidates runs/stream/cand.npz --warmup /tmp/warmup.jsonl.gz
"""

from __future__ import annotations

import argparse
import itertools
import json
from collections import Counter, deque
from pathlib import Path

import numpy as np

from hashrec.data import read_jsonl

DAY = 86400.0
DECAYS, WINDOWS = (0.5, 1.0, 2.0), (200, 1000, 5000)
BETAS, GAMMAS = (0, 0.1, 0.25, 0.5, 1, 2), (0, 0.1, 0.3, 1, 3)
TOP_USER, TOP_TREND, WIDTH = 10, 10, 64


def author_scores(history: tuple[list[str], list[float]], at: float) -> dict[float, dict[str, float]]:
    """Per decay d, the ACT-R base-level activation of each of the author's hashtags, as a share of their sum."""
    tags, times = history
    if not tags:
        return {d: {} for d in DECAYS}
    names, inverse = np.unique(np.array(tags), return_inverse=True)
    age = 1.0 + np.floor((at - np.array(times)) / DAY)
    out = {}
    for d in DECAYS:
        b = np.bincount(inverse, weights=age**-d)
        out[d] = dict(zip(names.tolist(), (b / b.sum()).tolist()))
    return out


def signals(meta: dict, warmup: list, chunk: int):
    """Per post, as of its chunk: the author's shares per decay, the trend's shares per window (one dict
    per chunk), and whether any gold hashtag appeared before (seen)."""
    n = len(meta["gold"])
    users: dict[str, tuple[list[str], list[float]]] = {}
    recent: deque[str] = deque(maxlen=max(WINDOWS))
    known: set[str] = set()
    seen, author, trend = np.zeros(n, bool), [None] * n, [None] * n

    def learn(tags, time, user):
        for t in tags:
            known.add(t)
            recent.append(t)
            if user:
                history = users.setdefault(user, ([], []))
                history[0].append(t)
                history[1].append(time)

    for q in warmup:
        learn(q.hashtags, q.time, q.user)
    gold, times, authors = meta["gold"], meta["time"], meta["user"]
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        window = list(recent)
        shares = {w: {t: v / w for t, v in Counter(window[-w:]).most_common()} for w in WINDOWS}
        for i in range(start, stop):
            seen[i] = any(t in known for t in gold[i])
            history = users.get(authors[i], ([], [])) if authors[i] else ([], [])
            author[i] = author_scores(history, times[i])
            trend[i] = shares
        for i in range(start, stop):
            learn(gold[i], times[i], authors[i])
    return author, trend, seen


def features(meta: dict, knn_i: np.ndarray, knn_v: np.ndarray, author: list, trend: list):
    """Per post: candidate label ids (WIDTH, -1 padded), gold mask, and the signal columns."""
    labels = meta["labels"]
    index = {t: i for i, t in enumerate(labels)}
    n = len(meta["gold"])
    cand = np.full((n, WIDTH), -1, np.int64)
    cols = {
        name: np.zeros((n, WIDTH), np.float32)
        for name in ["knn"] + [f"user{d}" for d in DECAYS] + [f"trend{w}" for w in WINDOWS]
    }
    for i in range(n):
        user, shares = author[i], trend[i]
        ids = [int(j) for j, v in zip(knn_i[i], knn_v[i]) if v > 0]
        ids += [index[t] for t, _ in sorted(user[DECAYS[0]].items(), key=lambda kv: -kv[1])[:TOP_USER]]
        ids += [index[t] for w in WINDOWS for t in list(shares[w])[:TOP_TREND]]
        ids = list(dict.fromkeys(ids))[:WIDTH]
        cand[i, : len(ids)] = ids
        kv = dict(zip(knn_i[i].tolist(), knn_v[i].tolist()))
        total = sum(v for v in kv.values() if v > 0) or 1.0
        tags = [labels[j] for j in ids]
        cols["knn"][i, : len(ids)] = [kv.get(j, 0.0) / total for j in ids]
        for d in DECAYS:
            cols[f"user{d}"][i, : len(ids)] = [user[d].get(t, 0.0) for t in tags]
        for w in WINDOWS:
            cols[f"trend{w}"][i, : len(ids)] = [shares[w].get(t, 0.0) for t in tags]
    gold = meta["gold"]
    is_gold = np.array([[j >= 0 and labels[j] in gold[i] for j in row] for i, row in enumerate(cand)])
    return cand, is_gold, cols


def f1_at_1(pick: np.ndarray, is_gold: np.ndarray, n_gold: np.ndarray, rows: np.ndarray) -> float:
    if not rows.any():
        return 0.0
    hits = is_gold[rows, pick[rows]].sum()
    p, r = hits / rows.sum(), hits / n_gold[rows].sum()
    return 2 * p * r / (p + r) if hits else 0.0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--candidates", type=Path, required=True)
    p.add_argument("--warmup", type=Path, required=True)
    p.add_argument("--dev", type=int, default=36199, help="the first N stream posts are dev")
    p.add_argument("--chunk", type=int, default=100)
    p.add_argument("--mix", type=int, default=2, help="mix the signals into the best N kNN settings on dev")
    a = p.parse_args()
    with np.load(a.candidates) as npz:  # an npz member is decompressed at each access: read each once
        z = {k: npz[k] for k in npz.files}
    meta = json.loads(str(z["meta"]))
    warmup = list(read_jsonl(a.warmup))
    n = len(meta["gold"])
    n_gold = np.array([len(set(g)) for g in meta["gold"]])
    dev = np.arange(n) < a.dev
    test = ~dev
    settings = sorted({k.rsplit("_", 1)[0] for k in z if k != "meta"})
    author, trend, seen = signals(meta, warmup, a.chunk)
    parts = (dev, test, test & seen, test & ~seen)
    print(f"test posts seen before: {seen[test].mean():.3f} (the ceiling); dev: {seen[dev].mean():.3f}")
    gold_sets = [set(g) for g in meta["gold"]]
    alone = {}
    for s in settings:
        top = z[f"{s}_i"][:, 0]
        hit = np.array([z[f"{s}_v"][i, 0] > 0 and meta["labels"][top[i]] in gold_sets[i] for i in range(n)])
        alone[s] = [f1_at_1(np.zeros(n, np.int64), hit[:, None], n_gold, rows) for rows in parts]
        print(
            f"knn {s}: dev {alone[s][0]:.4f}  test {alone[s][1]:.4f} (seen {alone[s][2]:.4f} new {alone[s][3]:.4f})",
            flush=True,
        )
    results = {}
    for s in sorted(alone, key=lambda s: -alone[s][0])[: a.mix]:
        cand, is_gold, cols = features(meta, z[f"{s}_i"], z[f"{s}_v"], author, trend)
        valid = cand >= 0
        for d, w, beta, gamma in itertools.product(DECAYS, WINDOWS, BETAS, GAMMAS):
            score = cols["knn"] + beta * cols[f"user{d}"] + gamma * cols[f"trend{w}"]
            pick = np.where(valid, score, -1).argmax(1)
            results[(s, d, w, beta, gamma)] = [f1_at_1(pick, is_gold, n_gold, rows) for rows in parts]
    print("best 15 on dev: (knn, decay, window, author, trend) dev test seen new")
    for k, v in sorted(results.items(), key=lambda kv: -kv[1][0])[:15]:
        print(k, " ".join(f"{x:.4f}" for x in v))
    for name, keep in (("author only", lambda k: k[4] == 0), ("trend only", lambda k: k[3] == 0)):
        k = max((k for k in results if keep(k)), key=lambda k: results[k][0])
        print(name, k, " ".join(f"{x:.4f}" for x in results[k]))


if __name__ == "__main__":
    main()
