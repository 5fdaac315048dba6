"""The LightGBM re-ranker (hashrec.models.boost, PAPER.md §5) on a real 2,000-post Weibo slice with a tiny acnn base.

What must hold: only base candidates come back, the leakage guard is real (training posts of the
base never reach the booster), save/load gives identical rankings, a replaced base is refused.
Whether boost beats its base is measured in docs/results/boost.md, not asserted here.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from hashrec import api
from hashrec.data import load_split
from hashrec.errors import ConfigError, ModelFileError
from hashrec.models import create
from hashrec.models.base import Recommender
from hashrec.models.boost import Boost, importance, lexical_features, model_sha256, plot_importance

QUICK = dict(n_estimators=20, early_stopping=5, n_candidates=20, rep_dims=4)


@pytest.fixture(scope="module")
def posts(small_split) -> dict:
    return {part: load_split(small_split, part) for part in ("train", "dev", "test")}


@pytest.fixture(scope="module")
def boost(base_dir, posts) -> Boost:
    return create("boost", base=str(base_dir), **QUICK).fit(posts["train"], posts["dev"])


@pytest.mark.parametrize("params", [{}, {"objective": "binary"}, {"boosting": "dart"}])
def test_only_base_candidates_come_back(base_dir, posts, boost, params):
    model = (
        boost
        if not params
        else create("boost", base=str(base_dir), **QUICK, **params).fit(posts["train"], posts["dev"])
    )
    base = Recommender.load(base_dir)
    texts = [p.text for p in posts["test"][:100]]
    for mine, theirs in zip(model.recommend(texts, k=10**6), base.recommend(texts, k=QUICK["n_candidates"])):
        assert len(mine) == QUICK["n_candidates"]  # k beyond n_candidates returns all candidates, no more
        assert {t for t, _ in mine} == {t for t, _ in theirs}


@pytest.fixture(scope="module")
def pop_dir(small_split, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pop") / "popularity"
    api.train("popularity", small_split, out)
    return out


def test_scorer_candidates_join_the_pool(base_dir, pop_dir, posts):
    model = create("boost", base=str(base_dir), scorers=(str(pop_dir),), from_scorers=3, **QUICK).fit(
        posts["train"], posts["dev"]
    )
    popular = {t for t, _ in Recommender.load(pop_dir).recommend("", k=3)[0]}
    texts = [p.text for p in posts["test"][:100]]
    base = Recommender.load(base_dir).recommend(texts, k=QUICK["n_candidates"])
    for mine, theirs in zip(model.recommend(texts, k=10**6), base):
        got = {t for t, _ in mine}
        assert len(got) == QUICK["n_candidates"] and popular <= got <= popular | {t for t, _ in theirs}


def test_a_non_neural_base_works_without_the_rep_group(pop_dir, posts):
    with pytest.raises(ConfigError, match="needs a neural base"):
        create("boost", base=str(pop_dir), **QUICK).fit(posts["train"], posts["dev"])
    model = create("boost", base=str(pop_dir), features=("base", "label", "post", "lexical"), **QUICK).fit(
        posts["train"], posts["dev"]
    )
    texts = [p.text for p in posts["test"][:50]]
    base = Recommender.load(pop_dir).recommend(texts, k=QUICK["n_candidates"])
    assert all({t for t, _ in a} == {t for t, _ in b} for a, b in zip(model.recommend(texts, k=10**6), base))


def test_guard_refuses_a_train_set_other_than_the_bases(base_dir, posts):
    with pytest.raises(ConfigError, match="not the ones .* was trained on"):
        create("boost", base=str(base_dir), **QUICK).fit(posts["train"][:-1], posts["dev"])


def test_guard_drops_the_bases_training_posts_from_dev(base_dir, posts):
    leaked = posts["train"][:150]
    model = create("boost", base=str(base_dir), **QUICK).fit(posts["train"], posts["dev"] + leaked)
    seen = model.trained_on_
    assert seen["n_dev_dropped_as_train"] == len(leaked)
    assert seen["n_dev_fit"] + seen["n_dev_stop"] == len(posts["dev"])
    with pytest.raises(ConfigError, match="every dev post is also a training post"):
        create("boost", base=str(base_dir), **QUICK).fit(posts["train"], leaked)


def test_guard_refuses_a_base_without_a_fingerprint(base_dir, posts, tmp_path):
    base = Recommender.load(base_dir)
    del base.trained_on_["train_sha256"]
    base.save(tmp_path / "old")
    with pytest.raises(ConfigError, match="no training fingerprint"):
        create("boost", base=str(tmp_path / "old"), **QUICK).fit(posts["train"], posts["dev"])


def test_dev_is_required(base_dir, posts):
    with pytest.raises(ConfigError, match="give a dev split"):
        create("boost", base=str(base_dir), **QUICK).fit(posts["train"])


def test_save_load_gives_identical_rankings(boost, posts, tmp_path):
    boost.save(tmp_path / "boost")
    loaded = Recommender.load(tmp_path / "boost")
    assert type(loaded) is Boost and loaded.get_params() == boost.get_params()
    texts = [p.text for p in posts["test"][:100]] + ["", "😀"]
    a, b = boost.recommend(texts, k=5), loaded.recommend(texts, k=5)
    assert [[t for t, _ in r] for r in a] == [[t for t, _ in r] for r in b]
    np.testing.assert_array_equal([[s for _, s in r] for r in a], [[s for _, s in r] for r in b])


def test_a_replaced_base_is_refused_on_load(boost, base_dir, small_split, tmp_path):
    moved = tmp_path / "base"
    shutil.copytree(base_dir, moved)
    model = create("boost", base=str(moved), **QUICK).fit(
        load_split(small_split, "train"), load_split(small_split, "dev")
    )
    model.save(tmp_path / "boost")
    retrained = Recommender.load(moved)
    retrained.net_.out.bias.data += 1.0  # any change of the base's weights
    retrained.save(moved)
    with pytest.raises(ModelFileError, match="retrained or replaced"):
        Recommender.load(tmp_path / "boost")


def test_importance_covers_every_feature_and_plots(boost, tmp_path):
    rows = importance(boost)
    assert sorted(n for n, _ in rows) == sorted(boost.feature_names_)
    assert abs(sum(s for _, s in rows) - 1.0) < 1e-6
    plot_importance(boost, tmp_path / "imp.png")
    assert (tmp_path / "imp.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_lexical_overlap_by_hand():
    got = lexical_features(["武汉", "加油", "医护"], ["武汉加油", "抗击疫情"])
    np.testing.assert_allclose(got, [[1.0, 1.0], [0.0, 0.0]])


def test_models_with_equal_weights_but_other_configs_have_other_checksums(posts, tmp_path):
    """NB applies alpha at scoring time: its weights do not change with it, its checksum must."""
    for alpha in (0.1, 0.01):
        create("nb", alpha=alpha).fit(posts["train"][:300]).save(tmp_path / f"nb{alpha}")
    assert (tmp_path / "nb0.1" / "weights.safetensors").read_bytes() == (
        tmp_path / "nb0.01" / "weights.safetensors"
    ).read_bytes()
    assert model_sha256(tmp_path / "nb0.1") != model_sha256(tmp_path / "nb0.01")
