"""Does a post's text predict a hashtag that spells the same words? Counts for one hashtag, per split.

    PYTHONPATH=src .venv/bin/python benchmarks/hashtag_in_text.py --data ../shared/benchmarks/weibo --hashtag 武汉加油

For hashtag H: how many training posts carry H and how many of those still say H in their text
(hashrec.data removes the hashtag itself, as the paper's protocol does); how many posts say H in
their text and which hashtags those carry; the same for short posts (at most --short characters),
the ones a nearest-neighbour vote matches when a user types H alone. docs/results/calibration.md
reads it for 武汉加油.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from hashrec.data import load_split


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, required=True, help="split directory")
    p.add_argument("--hashtag", required=True)
    p.add_argument("--short", type=int, default=12, help="a short post has at most this many characters")
    a = p.parse_args()
    h = a.hashtag
    counts = Counter(t for post in load_split(a.data, "train") for t in post.hashtags)
    rank = sorted(counts, key=lambda t: -counts[t]).index(h) + 1 if h in counts else None
    print(f"#{h}#: rank {rank} of {len(counts):,} training hashtags by frequency")
    for split in ("train", "test"):
        posts = load_split(a.data, split)
        tagged = [x for x in posts if h in x.hashtags]
        saying = [x for x in posts if h in x.text]
        short = [x for x in saying if len(x.text) <= a.short]
        print(
            f"{split}: {len(posts):,} posts; {len(tagged):,} carry #{h}#, of which "
            f"{sum(h in x.text for x in tagged):,} say {h} in their text"
        )
        print(
            f"  {len(saying):,} say {h}; {sum(h in x.hashtags for x in saying):,} of them carry #{h}#; "
            "their hashtags: "
            + ", ".join(f"{t} {n}" for t, n in Counter(t for x in saying for t in x.hashtags).most_common(5))
        )
        print(
            f"  {len(short):,} short ones (<= {a.short} characters); {sum(h in x.hashtags for x in short):,} "
            f"carry #{h}#; their hashtags: "
            + ", ".join(f"{t} {n}" for t, n in Counter(t for x in short for t in x.hashtags).most_common(5))
        )


if __name__ == "__main__":
    main()
