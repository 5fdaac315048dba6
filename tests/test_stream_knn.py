"""knn and hknn learning online, on slices of the real reference stream (../shared/benchmarks/weibo-stream).

What must hold: an updated knn scores as a kNN over all its posts with its IDF (the formula, brute
force); scored as of a moment it ignores every later post; a word first seen after fit is found
once learned (and not with learn_words=False); a saved updated model recommends the same; hknn's
memory grows with the new posts' h.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import SHARED

from hashrec.data import Post, read_jsonl
from hashrec.models import create
from hashrec.models.base import Recommender
from hashrec.models.bow import count_matrix, label_matrix, tfidf
from hashrec.models.knn import grams, vote
from hashrec.tokens import tokenize_many

STREAM = SHARED / "benchmarks" / "weibo-stream"


@pytest.fixture(scope="module")
def dev() -> list[Post]:
    return list(read_jsonl(STREAM / "dev.jsonl.gz"))


@pytest.fixture(scope="module")
def two_days(dev) -> tuple[list[Post], list[Post]]:
    """600 posts of the stream's first day and 600 of its second."""
    first = [q for q in dev if q.time == dev[0].time]
    second = [q for q in dev if q.time == dev[len(first)].time]
    return first[:600], second[:600]


def learned(params: dict, fit: list[Post], stream: list[Post], chunk: int = 100):
    model = create("knn", **params).fit(fit)
    for start in range(0, len(stream), chunk):
        model.update(stream[start : start + chunk])
    return model


@pytest.mark.parametrize("params", [dict(k=10, power=1.0), dict(k=5, power=2.0, ngrams=2, binary=True)])
def test_update_scores_as_a_knn_over_all_posts(dev, params):
    fit, stream, queries = dev[:800], dev[800:1400], dev[1400:1450]
    model = learned(params, fit, stream)
    words = model.words_
    all_docs = [grams(d, words.config.ngrams) for d in tokenize_many([q.text for q in fit + stream])]
    X = count_matrix(all_docs, words.vocab)
    if words.config.binary:
        X.data[:] = 1.0
    idf = words.idf(np.arange(len(words.vocab)))
    docs = tokenize_many([q.text for q in queries])
    Q = count_matrix([grams(d, words.config.ngrams) for d in docs], words.vocab)
    if words.config.binary:
        Q.data[:] = 1.0
    sim = (tfidf(Q, idf) @ tfidf(X, idf).T).toarray()
    tags = label_matrix(model.label_ids([q.hashtags for q in fit + stream]), len(model.labels_))
    want = vote(sim, params["k"], params["power"], tags)
    np.testing.assert_allclose(model._scores(docs), want, atol=1e-5)  # float32 index; + 1e-9 x P(t) ties
    assert set(model.labels_) == {t for q in fit + stream for t in q.hashtags}


def test_scored_as_of_a_moment_no_later_post_counts(two_days):
    first, second = two_days
    params = dict(k=20, power=1.0, tau=0.5, learn_words=False)
    before, after = create("knn", **params).fit(first), learned(params, first, second)
    texts = [q.text for q in second[:40]]  # their own copies are indexed in `after`, a day later
    docs = tokenize_many(texts)
    at = np.full(len(docs), first[0].time)
    got, want = after._scores_at(docs, at, None), before._scores_at(docs, at, None)
    np.testing.assert_allclose(got[:, : len(before.labels_)], want, atol=1e-6)
    assert np.abs(got[:, len(before.labels_) :]).max() < 1e-6  # hashtags born on the later day get nothing
    own = after._scores_at(docs, np.full(len(docs), second[0].time), None)
    hits = sum(after.labels_[i] in q.hashtags for i, q in zip(own.argmax(1), second))
    assert hits >= 35  # as of the later day, each post's own copy is its nearest neighbour


def test_new_words_are_found_once_learned(dev):
    fit, stream = dev[:500], dev[500:1500]
    model = create("knn", k=1).fit(fit)
    known = set(model.words_.vocab.stoi)
    post, word = next(
        (q, w)
        for q in stream
        for w in tokenize_many([q.text])[0]
        if w not in known and len(w) > 1 and not any(w in p.text for p in stream if p is not q)
    )
    frozen = learned(dict(k=1, learn_words=False), fit, stream)
    model = learned(dict(k=1), fit, stream)
    top = model.recommend(word, 1)[0][0]
    assert top[0] in post.hashtags and top[1] > 1e-3  # cos^2 of one word against a long post
    assert frozen.recommend(word, 1)[0][0][1] < 1e-6  # a vocabulary frozen at fit cannot see it


def test_save_load_after_update_recommends_the_same(dev, tmp_path):
    model = learned(dict(k=20, power=1.0, tau=0.25, ngrams=2, binary=True), dev[:600], dev[600:1000])
    model.save(tmp_path / "m")
    loaded = Recommender.load(tmp_path / "m")
    texts = [q.text for q in dev[1000:1040]]
    at = [q.time for q in dev[1000:1040]]
    assert loaded.recommend(texts, 5, at=at) == model.recommend(texts, 5, at=at)
    more = dev[1000:1100]
    assert loaded.update(more).recommend(texts, 5, at=at) == model.update(more).recommend(texts, 5, at=at)


def test_hknn_memory_grows_with_the_new_posts_h(base_dir, small_split, dev):
    from hashrec.data import load_split

    model = create("hknn", base=str(base_dir), k=1).fit(load_split(small_split, "train"))
    n = len(model.times_)
    model.update(dev[:200])
    assert len(model.memory_[0]) == len(model.times_) == n + 200 == len(model.words_)
    top = [r[0][0] for r in model.recommend([q.text for q in dev[:30]], 1)]
    assert sum(t in q.hashtags for t, q in zip(top, dev)) >= 28  # its own h and TF-IDF: cosine 1


def test_the_horizon_cuts_the_scan_not_the_scores(two_days, monkeypatch):
    first, second = two_days
    model = learned(dict(k=20, power=1.0, tau=1.0, horizon=0), first, second)
    docs = tokenize_many([q.text for q in second[:30]])
    at = np.full(len(docs), second[0].time)
    assert model._first_within_horizon(at) == len(first)  # the earlier day is not scanned
    cut = model._scores_at(docs, at, None)
    monkeypatch.setattr(model, "_first_within_horizon", lambda times: 0)
    np.testing.assert_allclose(model._scores_at(docs, at, None), cut, atol=1e-9)


def test_stream_model_learns_and_recommends_chunk_by_chunk(dev, tmp_path):
    model = create("stream").fit(dev[:800])
    hits = 0
    for start in range(800, 1400, 100):
        chunk = dev[start : start + 100]
        recs = model.recommend([q.text for q in chunk], 5, at=[q.time for q in chunk], user=[q.user for q in chunk])
        assert all(len(r) == 5 for r in recs)
        hits += sum(r[0][0] in q.hashtags for r, q in zip(recs, chunk))
        model.update(chunk)
    assert hits >= 250  # measured 369 of 600 top hashtags right; popularity fitted on the 800 gets 53
    model.save(tmp_path / "s")
    loaded = Recommender.load(tmp_path / "s")
    chunk = dev[1400:1450]
    args = ([q.text for q in chunk], 5)
    kwargs = dict(at=[q.time for q in chunk], user=[q.user for q in chunk])
    assert loaded.recommend(*args, **kwargs) == model.recommend(*args, **kwargs)


def test_stream_author_term_is_the_authors_own_hashtags(dev):
    author = next(q.user for q in dev[200:600] if q.user and sum(p.user == q.user for p in dev[:600]) >= 2)
    own = {t for q in dev[:600] if q.user == author for t in q.hashtags}
    model = create("stream", author=1000.0, trend=0.0).fit(dev[:600])
    top = model.recommend("今天", 3, at=dev[600].time, user=author)[0]
    assert top[0][0] in own
    stranger = model.recommend("今天", 3, at=dev[600].time, user="no such author")[0]
    assert stranger[0][1] < 2  # no author term: kNN and trend shares only
