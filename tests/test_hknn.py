"""hknn: k nearest neighbours by a trained network's h, on the real 2,000-post Weibo slice.

What must hold: the scores are the neighbours' cosines as the docstring's formula says, with
several views the similarity is their mean, the memory is the bases' own training posts (other
posts, or a base without h, are refused), a replaced base is refused on load, and boost takes
hknn as a scorer. The contract suite
(test_contract.py) covers k, scores' order and the save/load round trip. Whether hknn beats
TF-IDF kNN is measured in docs/results/boost.md, not asserted here.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from conftest import TINY_ACNN

from hashrec import api
from hashrec.data import load_split
from hashrec.errors import ConfigError, ModelFileError
from hashrec.models import create
from hashrec.models.base import Recommender
from hashrec.tokens import tokenize_many


@pytest.fixture(scope="module")
def posts(small_split) -> dict:
    return {part: load_split(small_split, part) for part in ("train", "dev", "test")}


@pytest.fixture(scope="module")
def hknn(base_dir, posts):
    return create("hknn", base=str(base_dir), words=False, k=5, power=3.0).fit(posts["train"])


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_scores_are_the_nearest_posts_cosines_to_the_power(hknn, base_dir, posts):
    base = Recommender.load(base_dir)
    train_h = base.hidden(tokenize_many([p.text for p in posts["train"]]))
    docs = tokenize_many([p.text for p in posts["test"][:20]])
    cos = unit(base.hidden(docs)) @ unit(train_h).T
    got = hknn._scores(docs)
    for i, row in enumerate(cos):
        want = np.zeros(len(hknn.labels_))
        for j in np.argsort(-row)[:5]:
            for tag in posts["train"][j].hashtags:
                want[hknn.label_index_[tag]] += max(row[j], 0.0) ** 3
        np.testing.assert_allclose(got[i], want, atol=1e-5)  # + popularity's tie-breaking 1e-9 x P(t)


def test_with_several_views_the_similarity_is_their_mean(base_dir, small_split, posts, tmp_path):
    api.train("attention", small_split, tmp_path / "attention", params=dict(TINY_ACNN, seed=1))
    bases = [Recommender.load(base_dir), Recommender.load(tmp_path / "attention")]
    model = create("hknn", base=(str(base_dir), str(tmp_path / "attention"))).fit(posts["train"])
    train_docs = tokenize_many([p.text for p in posts["train"]])
    docs = tokenize_many([p.text for p in posts["test"][:20]])
    views = [unit(net.hidden(docs)) @ unit(net.hidden(train_docs)).T for net in bases]
    views.append(next(create("knn").fit(posts["train"]).words_.cosines(docs)))
    np.testing.assert_allclose(next(model.similarities(docs)), sum(views) / 3, atol=1e-5)
    model.save(tmp_path / "hknn")
    again = Recommender.load(tmp_path / "hknn")
    texts = [p.text for p in posts["test"][:50]]
    assert again.recommend(texts, k=5) == model.recommend(texts, k=5)


def test_memory_must_be_the_bases_training_posts(base_dir, posts):
    with pytest.raises(ConfigError, match="not trained on these posts"):
        create("hknn", base=str(base_dir)).fit(posts["train"][:-1])
    with pytest.raises(ConfigError, match="needs base=MODEL_DIR"):
        create("hknn", base=(str(base_dir), ""))


def test_base_must_be_a_network(small_split, posts, tmp_path):
    api.train("nb", small_split, tmp_path / "nb")
    with pytest.raises(ConfigError, match="must be a network"):
        create("hknn", base=str(tmp_path / "nb")).fit(posts["train"])
    with pytest.raises(ConfigError, match="needs base=MODEL_DIR"):
        create("hknn")


def test_a_replaced_base_is_refused_on_load(base_dir, posts, tmp_path):
    moved = tmp_path / "base"
    shutil.copytree(base_dir, moved)
    create("hknn", base=str(moved)).fit(posts["train"]).save(tmp_path / "hknn")
    retrained = Recommender.load(moved)
    retrained.net_.combine.bias.data += 1.0  # h changes, and with it every neighbour
    retrained.save(moved)
    with pytest.raises(ModelFileError, match="retrained or replaced"):
        Recommender.load(tmp_path / "hknn")


def test_boost_takes_hknn_as_a_scorer(hknn, base_dir, posts, tmp_path):
    hknn.save(tmp_path / "hknn")
    model = create(
        "boost",
        base=str(base_dir),
        scorers=(str(tmp_path / "hknn"),),
        n_estimators=10,
        early_stopping=5,
        n_candidates=20,
        rep_dims=4,
    ).fit(posts["train"], posts["dev"])
    assert {"hknn_score", "hknn_rank", "hknn_gap"} <= set(model.feature_names_)
    assert len(model.recommend([p.text for p in posts["test"][:10]], k=3)[0]) == 3
