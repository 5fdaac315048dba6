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
TOP_USER, TOP_TREND, WIDTH = 10, 10, 64


def author_scores(history: dict[str, list[float]], at: float, d: float) -> dict[str, float]:
    """ACT-R base-level activation of each of the author's hashtags, as a share of their sum."""
    b = {t: sum((1.0 + np.floor((at - s) / DAY)) ** -d for s in uses) for t, uses in history.items()}
    total = sum(b.values())
    return {t: v / total for t, v in b.items()} if total else {}


def features(meta: dict, knn_i: np.ndarray, knn_v: np.ndarray, warmup: list, chunk: int):
    """Per post: candidate label ids (WIDTH, -1 padded), gold mask, and the signal columns."""
    labels = meta["labels"]
    index = {t: i for i, t in enumerate(labels)}
    n = len(meta["gold"])
    cand = np.full((n, WIDTH), -1, np.int64)
    cols = {name: np.zeros((n, WIDTH), np.float32) for name in
            ["knn"] + [f"user{d}" for d in DECAYS] + [f"trend{w}" for w in WINDOWS]}
    users: dict[str, dict[str, list[float]]] = {}
    recent: deque[str] = deque(maxlen=max(WINDOWS))
    seen: set[str] = set()
    seen_post = np.zeros(n, bool)

    def learn(tags, time, user):
        for t in tags:
            seen.add(t)
            recent.append(t)
            if user:
                users.setdefault(user, {}).setdefault(t, []).append(time)

    for q in warmup:
        learn(q.hashtags, q.time, q.user)
    gold, times, authors = meta["gold"], meta["time"], meta["user"]
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        trend = {}
        for w in WINDOWS:
            c = Counter(list(recent)[-w:])
            trend[w] = {t: v / w for t, v in c.most_common()}
        for i in range(start, stop):
            seen_post[i] = any(t in seen for t in gold[i])
            user = {d: author_scores(users.get(authors[i], {}), times[i], d) for d in DECAYS} if authors[i] else {}
            ids = [int(j) for j, v in zip(knn_i[i], knn_v[i]) if v > 0]
            ids += [index[t] for t, _ in sorted(user.get(DECAYS[0], {}).items(), key=lambda kv: -kv[1])[:TOP_USER]]
            ids += [index[t] for w in WINDOWS for t in list(trend[w])[:TOP_TREND]]
            ids = list(dict.fromkeys(ids))[:WIDTH]
            cand[i, :len(ids)] = ids
            kv = dict(zip(knn_i[i].tolist(), knn_v[i].tolist()))
            total = sum(v for v in kv.values() if v > 0) or 1.0
            for c, j in enumerate(ids):
                t = labels[j]
                cols["knn"][i, c] = kv.get(j, 0.0) / total
                for d in DECAYS:
                    cols[f"user{d}"][i, c] = user.get(d, {}).get(t, 0.0)
                for w in WINDOWS:
                    cols[f"trend{w}"][i, c] = trend[w].get(t, 0.0)
        for i in range(start, stop):
            learn(gold[i], times[i], authors[i])
    is_gold = np.array([[j >= 0 and labels[j] in set(gold[i]) for j in row] for i, row in enumerate(cand)])
    return cand, is_gold, cols, seen_post


def f1_at_1(pick: np.ndarray, is_gold: np.ndarray, n_gold: np.ndarray, rows: np.ndarray) -> float:
    hits = is_gold[rows, pick[rows]].sum()
    p, r = hits / rows.sum(), hits / n_gold[rows].sum()
    return 2 * p * r / (p + r) if hits else 0.0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--candidates", type=Path, required=True)
    p.add_argument("--warmup", type=Path, required=True)
    p.add_argument("--dev", type=int, default=36199, help="the first N stream posts are dev")
    p.add_argument("--chunk", type=int, default=100)
    a = p.parse_args()
    z = np.load(a.candidates)
    meta = json.loads(str(z["meta"]))
    warmup = list(read_jsonl(a.warmup))
    n = len(meta["gold"])
    n_gold = np.array([len(set(g)) for g in meta["gold"]])
    dev = np.arange(n) < a.dev
    test = ~dev
    settings = sorted({k.rsplit("_", 1)[0] for k in z.files if k != "meta"})
    results = {}
    for s in settings:
        cand, is_gold, cols, seen = features(meta, z[f"{s}_i"], z[f"{s}_v"], warmup, a.chunk)
        valid = cand >= 0
        for d, w, beta, gamma in itertools.product(DECAYS, WINDOWS, (0, 0.1, 0.25, 0.5, 1, 2), (0, 0.1, 0.3, 1, 3)):
            score = cols["knn"] + beta * cols[f"user{d}"] + gamma * cols[f"trend{w}"]
            pick = np.where(valid, score, -1).argmax(1)
            results[(s, d, w, beta, gamma)] = [f1_at_1(pick, is_gold, n_gold, rows) for rows in
                                               (dev, test, test & seen, test & ~seen)]
        base = results[(s, DECAYS[0], WINDOWS[0], 0, 0)]
        best = max((k for k in results if k[0] == s), key=lambda k: results[k][0])
        print(f"{s}: knn alone dev {base[0]:.4f} test {base[1]:.4f} (seen {base[2]:.4f} new {base[3]:.4f}); "
              f"best on dev {best[1:]} dev {results[best][0]:.4f} test {results[best][1]:.4f} "
              f"(seen {results[best][2]:.4f} new {results[best][3]:.4f}); test seen share {seen[test].mean():.3f}",
              flush=True)
    for k, v in sorted(results.items(), key=lambda kv: -kv[1][0])[:15]:
        print(k, " ".join(f"{x:.4f}" for x in v))
    beta_only = {k: v for k, v in results.items() if k[4] == 0}
    gamma_only = {k: v for k, v in results.items() if k[3] == 0}
    for name, part in (("author only", beta_only), ("trend only", gamma_only)):
        k = max(part, key=lambda k: part[k][0])
        print(name, k, " ".join(f"{x:.4f}" for x in part[k]))


if __name__ == "__main__":
    main()
