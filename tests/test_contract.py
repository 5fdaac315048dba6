"""One contract suite over every registered recommender (scikit-learn's `parametrize_with_checks` idea).

FAST holds per-model settings that keep each fit to seconds on the 2,000-post slice; a model
registered without an entry runs with its defaults.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import TINY_ACNN

from hashrec.errors import ConfigError, NotFittedError
from hashrec.models import MODELS, STACKED, create
from hashrec.models.base import Recommender

FAST: dict[str, dict] = {"acnn": TINY_ACNN, "cnn": TINY_ACNN, "attention": TINY_ACNN}
FAST.update({"lda": dict(topics=20, sweeps=20), "fasttext": dict(epoch=10, threads=1, bucket=50_000)})
FAST.update(
    {
        "topicwa": dict(n_topics=10, iterations=10, burn_in=5, em_iterations=3, infer_iterations=4),
        "ttm": dict(n_topics=10, iterations=10, burn_in=5),
    }
)
TEXTS = ["钟南山说疫情拐点还没有到来", "武汉加油，致敬医护人员", "", "😀😀", "hello world #tag"]


@pytest.fixture(scope="module", params=[m for m in MODELS if m != "boost"])  # boost: test_boost.py
def fitted(request, weibo_sample) -> Recommender:
    # hknn's base (conftest) learned from the same 2,000 posts, as hknn requires
    base = {"base": str(request.getfixturevalue("base_dir"))} if request.param in STACKED else {}
    model = create(request.param, **FAST.get(request.param, {}), **base)
    assert model.fit(weibo_sample["train"][:2000], weibo_sample["dev"][:300]) is model
    return model


def test_recommend_before_fit_raises():
    for name in MODELS:
        base = {"base": "runs/any"} if name in STACKED else {}
        with pytest.raises(NotFittedError, match="not fitted yet"):
            create(name, **FAST.get(name, {}), **base).recommend(["x"])


def test_k_honoured_and_scores_sorted(fitted):
    for k in (1, 3, 7):
        out = fitted.recommend(TEXTS, k=k)
        assert len(out) == len(TEXTS)
        for ranking in out:
            assert len(ranking) == k
            scores = [s for _, s in ranking]
            assert scores == sorted(scores, reverse=True) and all(np.isfinite(scores))
            assert len({t for t, _ in ranking}) == k


def test_k_larger_than_label_set_returns_all(fitted):
    out = fitted.recommend(["武汉"], k=10**6)
    assert len(out[0]) == len(fitted.labels_)


@pytest.mark.parametrize("k", [0, -1, 1.5, True])
def test_bad_k_is_a_config_error(fitted, k):
    with pytest.raises(ConfigError, match="positive integer"):
        fitted.recommend(["x"], k=k)


def test_save_load_gives_identical_rankings(fitted, tmp_path):
    fitted.save(tmp_path / "m")
    loaded = Recommender.load(tmp_path / "m")
    assert type(loaded) is type(fitted) and loaded.get_params() == fitted.get_params()
    a, b = fitted.recommend(TEXTS, k=5), loaded.recommend(TEXTS, k=5)
    assert [[t for t, _ in r] for r in a] == [[t for t, _ in r] for r in b]
    np.testing.assert_allclose([[s for _, s in r] for r in a], [[s for _, s in r] for r in b], rtol=1e-5)


def test_unknown_option_lists_valid_ones():
    with pytest.raises(ConfigError, match="unknown option 'nonsense'"):
        create("popularity", nonsense=1)
