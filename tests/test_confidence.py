"""Calibrated confidence (hashrec.calibration) and the one answer shape, on 2,000 real Weibo posts.

Each model is calibrated on the dev posts at fit; `suggest` and `api.recommend` report
P(author used the hashtag) per suggestion, None for a model without calibration.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from hashrec import api
from hashrec.calibration import RANKS, Calibration, isotonic
from hashrec.cli import main
from hashrec.errors import ConfigError, ModelFileError
from hashrec.models import create
from hashrec.models.base import Recommender

POSTS = ["钟南山院士说疫情拐点还没有到来", "武汉加油，致敬医护人员", "Sunset at the beach in Santa Monica"]
SHAPE = {"hashtag", "score", "confidence"}


@pytest.fixture(scope="module", params=["nb", "knn"])
def fitted(request, weibo_sample) -> Recommender:
    return create(request.param).fit(weibo_sample["train"][:2000], weibo_sample["dev"][:500])


def test_isotonic_is_the_pooled_means():
    xs, ps = isotonic(np.array([1.0, 2.0, 3.0, 4.0, 4.0]), np.array([0, 1, 0, 1, 1]))
    # (2, 3) violate the order and pool to 0.5; the two x = 4 share one value
    assert xs.tolist() == [1.0, 1.0, 2.0, 3.0, 4.0, 4.0] and ps.tolist() == [0.0, 0.0, 0.5, 0.5, 1.0, 1.0]


def test_confidence_is_a_probability_monotone_in_score(fitted, weibo_sample):
    cal = fitted.calibration_
    assert cal is not None and cal.n_posts == 500 and 1 <= len(cal.steps) <= RANKS
    for xs, ps in cal.steps:
        assert np.all(np.diff(xs) >= 0) and np.all(np.diff(ps) >= 0) and 0 <= ps.min() <= ps.max() <= 1
    for row in fitted.suggest([p.text for p in weibo_sample["test"][:200]], k=RANKS):
        conf = [s.confidence for s in row]
        assert all(0 <= c <= 1 for c in conf) and conf == sorted(conf, reverse=True)  # best first, as scores
    lo, hi = np.percentile(cal.steps[0][0], [5, 95])
    assert cal(np.array([[lo], [hi]]))[:, 0].tolist() == sorted(cal(np.array([[lo], [hi]]))[:, 0].tolist())


def test_confidence_means_what_it_says_on_held_out_posts(fitted, weibo_sample):
    """Mean top-1 confidence within 0.1 of the observed top-1 precision on 1,000 test posts."""
    test = weibo_sample["test"][:1000]
    top1 = [row[0] for row in fitted.suggest([p.text for p in test], k=1)]
    observed = np.mean([s.hashtag in p.hashtags for s, p in zip(top1, test)])
    assert abs(np.mean([s.confidence for s in top1]) - observed) < 0.1


def test_threshold_can_leave_no_suggestion(fitted):
    every = fitted.suggest(POSTS, k=5)
    assert fitted.suggest(POSTS[2], k=5, min_confidence=0.5) == [[]]  # English on a Chinese model: nothing fits
    mid = sorted(s.confidence for row in every for s in row)[len(POSTS) * 5 // 2]
    kept = fitted.suggest(POSTS, k=5, min_confidence=mid)
    assert kept == [[s for s in row if s.confidence >= mid] for row in every]
    assert api.recommend(fitted, POSTS, k=5, min_confidence=1.0) == [
        {"text": t, "hashtags": [s._asdict() for s in row if s.confidence == 1.0]} for t, row in zip(POSTS, every)
    ]


@pytest.mark.parametrize("bad", [-0.1, 1.5, "0.5", True])
def test_threshold_must_be_a_probability(fitted, bad):
    with pytest.raises(ConfigError, match="min_confidence"):
        fitted.suggest(POSTS, min_confidence=bad)


def test_calibration_survives_save_and_load(fitted, tmp_path):
    fitted.save(tmp_path / "m")
    loaded = Recommender.load(tmp_path / "m")
    assert loaded.suggest(POSTS, k=5) == fitted.suggest(POSTS, k=5)
    stored = json.loads((tmp_path / "m" / "model.json").read_text())["calibration"]
    assert stored["method"] == "isotonic per rank" and len(stored["ranks"]) == len(fitted.calibration_.steps)


def test_model_without_dev_or_saved_before_reports_null(weibo_sample, tmp_path):
    model = create("nb").fit(weibo_sample["train"][:2000])
    assert model.calibration_ is None
    assert {s.confidence for row in model.suggest(POSTS) for s in row} == {None}
    with pytest.raises(ConfigError, match="no calibrated confidence"):
        model.suggest(POSTS, min_confidence=0.5)
    calibrated = create("nb").fit(weibo_sample["train"][:2000], weibo_sample["dev"][:500])
    calibrated.save(tmp_path / "old")
    meta = json.loads((tmp_path / "old" / "model.json").read_text())
    del meta["calibration"]  # a model.json written before hashrec calibrated models
    (tmp_path / "old" / "model.json").write_text(json.dumps(meta))
    old = Recommender.load(tmp_path / "old")
    assert api.recommend(old, POSTS[0], k=2)[0]["hashtags"][0]["confidence"] is None
    assert old.recommend(POSTS, k=5) == calibrated.recommend(POSTS, k=5)


def test_malformed_calibration_is_refused_on_load(weibo_sample, tmp_path):
    create("nb").fit(weibo_sample["train"][:2000], weibo_sample["dev"][:500]).save(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    meta["calibration"]["ranks"][0]["p"][0] = 7
    (tmp_path / "m" / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelFileError, match="calibration is malformed"):
        Recommender.load(tmp_path / "m")


def test_too_few_held_out_posts_give_no_calibration():
    assert Calibration.fit([("a",)] * 5, [[("a", 1.0)]] * 5) is None


def test_cli_json_is_the_api_shape(fitted, tmp_path, capsys):
    fitted.save(tmp_path / "m")
    assert main(["recommend", "--model", str(tmp_path / "m"), "-k", "3", "--json", *POSTS]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows == json.loads(json.dumps(api.recommend(fitted, POSTS, k=3), ensure_ascii=False))
    assert all(set(h) == SHAPE for r in rows for h in r["hashtags"])
    assert main(["recommend", "--model", str(tmp_path / "m"), "--min-confidence", "0.5", POSTS[2]]) == 0
    assert capsys.readouterr().out.strip() == "(no hashtag fits)"
    assert main(["recommend", "--model", str(tmp_path / "m"), POSTS[0]]) == 0
    assert capsys.readouterr().out.count("%)") == 5  # "#话题 (62%)": confidence as a probability


def test_http_gives_the_api_shape_and_applies_the_threshold(fitted):
    import httpx

    from hashrec.server import create_app, running

    with running(create_app(fitted)) as base, httpx.Client(base_url=base, timeout=30) as client:
        one = client.post("/recommend", json={"text": POSTS[0], "k": 3}).json()
        assert one == json.loads(json.dumps(api.recommend(fitted, POSTS[0], k=3)[0]))
        assert all(set(h) == SHAPE for h in one["hashtags"])
        batch = client.post("/recommend/batch", json={"texts": POSTS, "k": 3, "min_confidence": 0.5}).json()
        assert batch["results"] == json.loads(json.dumps(api.recommend(fitted, POSTS, k=3, min_confidence=0.5)))
        assert batch["results"][2]["hashtags"] == []  # English on a Chinese model: no hashtag fits
        assert client.post("/recommend", json={"text": POSTS[2], "min_confidence": 0.5}).json()["hashtags"] == []
        assert client.post("/recommend", json={"text": POSTS[2], "min_confidence": 2}).status_code == 422
        info = client.get("/model").json()
        assert info["calibration"]["n_posts"] == 500 and info["min_confidence"] is None
    with running(create_app(fitted, min_confidence=0.5)) as base, httpx.Client(base_url=base, timeout=30) as client:
        assert client.post("/recommend", json={"text": POSTS[2]}).json()["hashtags"] == []  # the server's default
        assert len(client.post("/recommend", json={"text": POSTS[2], "min_confidence": 0}).json()["hashtags"]) == 5


def test_http_uncalibrated_model_answers_null_and_refuses_a_threshold(weibo_sample):
    import httpx

    from hashrec.server import create_app, running

    model = create("nb").fit(weibo_sample["train"][:2000])
    with pytest.raises(ConfigError, match="no calibrated confidence"):
        create_app(model, min_confidence=0.5)  # `hashrec serve --min-confidence` on it: refused at start
    with running(create_app(model)) as base, httpx.Client(base_url=base, timeout=30) as client:
        answer = client.post("/recommend", json={"text": POSTS[0], "k": 2}).json()
        assert [h["confidence"] for h in answer["hashtags"]] == [None, None]
        refused = client.post("/recommend", json={"text": POSTS[0], "min_confidence": 0.5})
        assert refused.status_code == 422 and "no calibrated confidence" in refused.json()["detail"]
        assert client.get("/model").json()["calibration"] is None
