"""Would switching off jieba's HMM (its discovery of words missing from the dictionary) pay?

    .venv/bin/python benchmarks/hmm_quality.py --data /work/shared/benchmarks/weibo --model nb

For HMM on (hashrec's tokenizer) and off: CPU seconds to tokenise the training posts, the
vocabulary size, the share of the HMM-on vocabulary the other keeps, and the dev F1@1/3/5 of
`model` trained on those tokens (docs/PERFORMANCE.md, "Tokenising weibo-full").

HMM off is obtained by putting a stand-in for `tokens.segment` in `hashrec.tokens` that passes hmm=False;
the tokenizer pool forks, so its workers inherit it. Each setting gets its own empty cache,
as the cache key does not know about the HMM.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
from collections import Counter
from pathlib import Path

from hashrec import tokens
from hashrec.bench import WEIBO, cpu_seconds
from hashrec.data import load_split
from hashrec.models import create


def segment_without_hmm(text: str) -> list[str]:
    """`tokens.segment` with the HMM off (jieba-rs then splits Latin words at punctuation as jieba does)."""
    import rjieba

    return rjieba.cut(text, hmm=False)


def run(data: Path, model: str, workers: int) -> dict[str, dict]:
    train, dev = load_split(data, "train"), load_split(data, "dev")
    segment = tokens.segment
    out, vocab = {}, {}
    for setting, segmenter in (("hmm on", segment), ("hmm off", segment_without_hmm)):
        tokens.segment = segmenter
        with tempfile.TemporaryDirectory() as cache:
            os.environ["HASHREC_CACHE"] = cache
            c = cpu_seconds()
            docs = tokens.tokenize_many([p.text for p in train], workers=workers)
            cpu = cpu_seconds() - c
            tokens.tokenize_many([p.text for p in dev], workers=workers)
            scores = create(model).fit(train).evaluate(dev, ks=(1, 3, 5))  # reads the tokens back from the cache
        counts = Counter(t for d in docs for t in d)
        vocab[setting] = {t for t, n in counts.items() if n >= 2}
        out[setting] = {"tokenise_cpu_s": round(cpu, 1), "tokens_per_post": round(sum(counts.values()) / len(docs), 2),
                        "vocab_count>=2": len(vocab[setting]), **{f"F1@{k}": round(s.f1, 4) for k, s in scores.items()}}
    tokens.segment = segment
    out["hmm off"]["share of hmm-on vocab kept"] = round(len(vocab["hmm on"] & vocab["hmm off"]) / len(vocab["hmm on"]), 4)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=WEIBO)
    p.add_argument("--model", default="nb")
    p.add_argument("--workers", type=int, default=2)
    a = p.parse_args()
    print(json.dumps({"data": str(a.data), "model": a.model, "load": os.getloadavg(),
                      **run(a.data, a.model, a.workers)}, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
