"""The count-based baselines (nb, lda, ibm1), the practical anchors (knn, fasttext) and `hashrec compare`.

Quality checks run on a real slice (2,000 Weibo training posts, 300 test posts) against the
popularity floor; margins are about half of what was measured, so they fail on a broken model,
not on noise.
"""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest

from hashrec.compare import compare
from hashrec.data import Post
from hashrec.errors import ConfigError
from hashrec.models import create
from hashrec.models.base import Recommender
from hashrec.models.bow import count_matrix, label_matrix
from hashrec.models.ibm1 import links
from hashrec.tokens import Vocab


@pytest.fixture(scope="module")
def slice_(weibo_sample) -> tuple[list[Post], list[Post]]:
    return weibo_sample["train"][:2000], weibo_sample["test"][:300]


@pytest.fixture(scope="module")
def floor(slice_) -> dict[int, float]:
    train, test = slice_
    return {k: s.f1 for k, s in create("popularity").fit(train).evaluate(test).items()}


# measured F1@1 on this slice vs popularity 0.020: nb 0.050, ibm1 0.062, knn 0.060
@pytest.mark.parametrize("name", ["nb", "ibm1", "knn"])
def test_beats_popularity_on_real_posts(slice_, floor, name):
    train, test = slice_
    f1 = create(name).fit(train).evaluate(test)[1].f1
    assert f1 > 2 * floor[1], f"{name}: F1@1 Want: > 2 x {floor[1]:.4f} Is: {f1:.4f}"


@pytest.fixture(scope="module")
def fasttext_fit(slice_) -> Recommender:
    # 50 epochs: at the default 25 the 2,000-post fit is weaker (test F1@1 0.010 vs 0.025 measured)
    return create("fasttext", epoch=50, threads=1, bucket=50_000).fit(slice_[0])


@pytest.mark.parametrize("name", ["lda", "fasttext"])
def test_fits_its_training_posts(slice_, fasttext_fit, name):
    """2,000 posts are too few for topics or embeddings to generalise (on this slice's test posts
    lda and fasttext stay near the floor; LDA is also the paper's weakest baseline, F1 0.062):
    the fit itself must still explain the hashtags of the posts it was trained on."""
    train = slice_[0]
    model = fasttext_fit if name == "fasttext" else create("lda", topics=50, sweeps=20).fit(train)
    f1 = model.evaluate(train[:500])[5].f1
    f1_pop = create("popularity").fit(train).evaluate(train[:500])[5].f1
    assert f1 > 1.5 * f1_pop, f"{name} on its training posts: F1@5 Want: > 1.5 x {f1_pop:.4f} Is: {f1:.4f}"


@pytest.mark.slow
@pytest.mark.parametrize("name, params", [("lda", {"sweeps": 50}), ("fasttext", {"threads": 1})])
def test_beats_popularity_on_the_sample(weibo_sample, name, params):
    train, test = weibo_sample["train"], weibo_sample["test"]  # 8,000 / 1,000 posts
    f1 = create(name, **params).fit(train).evaluate(test)[1].f1
    f1_pop = create("popularity").fit(train).evaluate(test)[1].f1  # measured: lda 0.0235, fasttext 0.054, pop 0.0152
    assert f1 > 1.2 * f1_pop, f"{name}: F1@1 Want: > 1.2 x {f1_pop:.4f} Is: {f1:.4f}"


def test_nb_by_hand():
    """Three posts, alpha = 1, |V| = 3: n_x = {a: 3, b: 1, c: 1}, n_y = {a: 1, b: 1, c: 2}, P(x) = P(y) = 1/2."""
    posts = [Post("a a b", ("x",)), Post("b c", ("y",)), Post("a c", ("x", "y"))]
    nb = create("nb", alpha=1.0).fit(posts)
    joint = {"x": 0.5 * (3 + 1) / (5 + 3) * (1 + 1) / (5 + 3), "y": 0.5 * (1 + 1) / (4 + 3) * (1 + 1) / (4 + 3)}
    got = dict(nb.recommend("a b", k=2)[0])
    for t in joint:
        assert math.exp(got[t]) == pytest.approx(joint[t] / sum(joint.values()))


def test_ibm1_table_rows_are_distributions(slice_):
    ibm1 = create("ibm1", iterations=3).fit(slice_[0])
    rows = np.asarray(ibm1.table_.sum(axis=1)).ravel()
    seen = rows > 0
    assert seen.sum() > 100
    np.testing.assert_allclose(rows[seen], 1.0)


def test_ibm1_links_enumerate_every_word_hashtag_pair_of_a_post():
    vocab = Vocab.build([["a", "b", "c"]])
    X = count_matrix([["a", "a", "b"], ["c"]], vocab)
    Y = label_matrix([[0, 1], [1]], 2)
    lk = links(X, Y)
    got = sorted((int(X.indices[e]), int(Y.indices[t]), float(n)) for e, t, n in zip(lk.doc_word, lk.doc_tag, lk.n))
    a, b, c = vocab.stoi["a"], vocab.stoi["b"], vocab.stoi["c"]
    assert got == sorted([(a, 0, 2.0), (a, 1, 2.0), (b, 0, 1.0), (b, 1, 1.0), (c, 1, 1.0)])


def test_fasttext_round_trip_keeps_native_model(slice_, fasttext_fit, tmp_path):
    ft = fasttext_fit
    ft.save(tmp_path / "ft")
    assert sorted(p.name for p in (tmp_path / "ft").iterdir()) == ["model.json", "weights.safetensors"]
    loaded = Recommender.load(tmp_path / "ft")
    texts = [p.text for p in slice_[1][:20]]
    assert loaded.recommend(texts, k=5) == ft.recommend(texts, k=5)


def test_compare_writes_the_report_and_survives_a_failing_method(small_split, tmp_path):
    out = tmp_path / "cmp"
    lines: list[str] = []
    # hknn without a base network fails (boost without one trains its own recipe)
    results = compare(
        small_split, ["popularity", "nb", "hknn", "ibm1"], out, overrides={"ibm1.iterations": 2}, log=lines.append
    )
    assert [r.name for r in results] == ["popularity", "nb", "hknn", "ibm1"]
    assert results[2].error and all(r.scores for r in results if r.name != "hknn")
    table = (out / "table.md").read_text(encoding="utf-8")
    assert "| nb |" in table and "0.203" in table and "| hknn | failed" in table
    with open(out / "scores.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 * 5 and {r["method"] for r in rows} == {"popularity", "nb", "ibm1"}
    assert (out / "f1_at_k.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    again = compare(small_split, ["nb"], out, reuse=True, log=lines.append)
    assert again[0].reused and again[0].train_s == results[1].train_s
    assert again[0].scores[1] == results[1].scores[1]


def test_compare_refuses_unknown_models_and_settings(small_split, tmp_path):
    with pytest.raises(ConfigError, match="registered models are: .*nb"):
        compare(small_split, ["nb", "nope"], tmp_path)
    with pytest.raises(ConfigError, match="MODEL.KEY=VALUE"):
        compare(small_split, ["nb"], tmp_path, overrides={"alpha": 0.5})
