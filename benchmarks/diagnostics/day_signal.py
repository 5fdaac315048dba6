"""How much the posting day would tell on weibo, a signal the benchmark's posts do not carry (a diagnostic).

    .venv/bin/python benchmarks/diagnostics/day_signal.py --data ../shared/benchmarks/weibo \\
        --source ../shared/data/weibo-covid19 --model runs/baselines/weibo/models/knn

weibo-covid19 was crawled under each day's trending hashtags, one CSV per day. This finds each
benchmark post's day (the file where its text first occurs, as the benchmark protocol keeps the
first copy) and scores test F1@1 (Eq. 11) of:

- the day's prior: the hashtag most frequent among the training posts of the post's day;
- MODEL: the saved model's own top hashtag (text only, as everywhere else in hashrec);
- MODEL, same day: the model's best hashtag among those used on the post's day in training
  (its own ranking otherwise, when none of its top 100 was).

Nothing in hashrec's recommenders uses the day: this measures what the text-only task leaves out.
"""

from __future__ import annotations

import argparse
from collections import Counter, defaultdict
from pathlib import Path

from hashrec.data import load_split, read_weibo_csv
from hashrec.metrics import evaluate_ranked
from hashrec.models.base import Recommender
from hashrec.models.boost import model_sha256, model_top
from hashrec.tokens import tokenize_many


def days(source: Path) -> dict[str, str]:
    """Clean text -> the name of the first CSV (sorted by name, as the benchmark protocol reads them) holding it."""
    first: dict[str, str] = {}
    for path in sorted(source.glob("*.csv")):
        for post in read_weibo_csv(path):
            first.setdefault(post.text, path.stem)
    return first


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, required=True, help="the weibo reference split directory")
    p.add_argument("--source", type=Path, required=True, help="../shared/data/weibo-covid19")
    p.add_argument("--model", type=Path, required=True, help="a saved recommender trained on --data's train split")
    a = p.parse_args()
    day_of = days(a.source)
    train, test = load_split(a.data, "train"), load_split(a.data, "test")
    by_day: dict[str, Counter] = defaultdict(Counter)
    for post in train:
        by_day[day_of[post.text]].update(post.hashtags)
    test_days = [day_of[post.text] for post in test]
    model = Recommender.load(a.model)
    ids, _ = model_top(model, model_sha256(a.model), tokenize_many([post.text for post in test]), 100)
    ranked = [[model.labels_[i] for i in row] for row in ids]
    same_day = [[t for t in row if t in by_day[d]] + row for row, d in zip(ranked, test_days)]
    gold = [post.hashtags for post in test]
    per_day = sorted(Counter(day_of[post.text] for post in train).values())
    print(
        f"test posts {len(test):,} on {len(set(test_days))} days; training posts per day: "
        f"median {per_day[len(per_day) // 2]:,}, max {per_day[-1]:,}"
    )
    for name, rows in (
        ("the day's prior", [[by_day[d].most_common(1)[0][0]] for d in test_days]),
        (f"{a.model.name}", ranked),
        (f"{a.model.name}, same day", same_day),
    ):
        print(f"{name:28s} F1@1 {evaluate_ranked(gold, [r[:1] for r in rows], ks=(1,))[1].f1:.4f}")


if __name__ == "__main__":
    main()
