"""Shared fixtures: small slices of the real benchmarks (../shared) and of the bundled sample."""
from __future__ import annotations

from pathlib import Path

import pytest

from hashrec.data import Post, load_split, write_jsonl

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
SAMPLE = ROOT / "data" / "sample"


@pytest.fixture(scope="session")
def weibo_sample() -> dict[str, list[Post]]:
    return {part: load_split(SAMPLE / "weibo", part) for part in ("train", "dev", "test")}


@pytest.fixture(scope="session")
def tweeteval_sample() -> dict[str, list[Post]]:
    return {part: load_split(SAMPLE / "tweeteval", part) for part in ("train", "dev", "test")}


@pytest.fixture(scope="session")
def small_split(tmp_path_factory, weibo_sample) -> Path:
    """A split directory of 2,000 train / 300 dev / 300 test real Weibo posts."""
    out = tmp_path_factory.mktemp("small")
    for part, n in (("train", 2000), ("dev", 300), ("test", 300)):
        write_jsonl(out / f"{part}.jsonl.gz", weibo_sample[part][:n])
    return out
