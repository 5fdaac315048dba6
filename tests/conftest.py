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


TINY_ACNN = dict(dim=16, n_maps=16, local_dim=16, hidden=32, batch_size=50, lr=3e-3, epochs=1, embeddings="random")


@pytest.fixture(scope="session")
def base_dir(small_split, tmp_path_factory) -> Path:
    """A tiny acnn trained on small_split's train posts: the base of boost and hknn in the tests."""
    from hashrec import api

    out = tmp_path_factory.mktemp("base") / "acnn"
    api.train("acnn", small_split, out, params=TINY_ACNN)
    return out
