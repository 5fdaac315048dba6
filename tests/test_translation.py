"""TopicWA and TTM (models/translation.py): sampler bookkeeping, the table, scoring, quality floor."""

from __future__ import annotations

import numpy as np
import pytest

from hashrec.models import create
from hashrec.models.base import Recommender
from hashrec.models.translation import TTM, Alignments, Corpus, TTMConfig, _seed, _ttm_counts, lda_gibbs, ttm_gibbs
from hashrec.tokens import Vocab, tokenize_many

# 10 topics for TTM: with one topic per post, 2,000 posts leave most of 50 topic tables empty
QUICK = {
    "topicwa": dict(iterations=30, burn_in=20, infer_iterations=10),
    "ttm": dict(iterations=30, burn_in=20, n_topics=10),
}


@pytest.fixture(scope="module")
def slice_(weibo_sample):
    return weibo_sample["train"][:2000], weibo_sample["test"][:300]


@pytest.fixture(scope="module", params=sorted(QUICK))
def fitted(request, slice_):
    return create(request.param, **QUICK[request.param]).fit(slice_[0])


@pytest.fixture(scope="module")
def encoded(slice_):
    """The first 500 training posts as a Corpus and their Alignments."""
    posts = slice_[0][:500]
    docs = tokenize_many([p.text for p in posts])
    labels = sorted({t for p in posts for t in p.hashtags})
    index = {t: i for i, t in enumerate(labels)}
    vocab = Vocab.build(docs, min_count=2)
    corpus = Corpus.encode(docs, vocab)
    align = Alignments.build(corpus, [[index[t] for t in p.hashtags] for p in posts], len(labels), 10)
    return corpus, align, len(vocab), len(labels)


def test_lda_counts_match_a_recount_after_sampling(encoded):
    corpus, _, V, _ = encoded
    K = 7
    cfg = TTMConfig(n_topics=K, iterations=5, burn_in=2)
    _seed(1)
    lda = lda_gibbs(corpus, K, V, cfg)
    z, doc = lda["z"], corpus.doc_of_token()
    ndk = np.zeros_like(lda["ndk"])
    np.add.at(ndk, (doc, z), 1)
    nwk = np.zeros_like(lda["nwk"])
    np.add.at(nwk, (corpus.words, z), 1)
    np.testing.assert_array_equal(lda["ndk"], ndk)
    np.testing.assert_array_equal(lda["nwk"], nwk)
    np.testing.assert_array_equal(lda["nk"], nwk.sum(axis=0))
    assert lda["ndk"].sum() == len(corpus.words) and len(np.unique(z)) == K
    np.testing.assert_allclose(lda["phi"].sum(axis=1), 1.0)


@pytest.mark.parametrize("align_to", ["topical", "all"])
def test_ttm_counts_match_a_recount_after_sampling(encoded, align_to):
    corpus, align, V, H = encoded
    K = 7
    _seed(1)
    cfg = TTMConfig(n_topics=K, iterations=5, burn_in=2, align_to=align_to)
    state, mean = ttm_gibbs(corpus, align, np.full(H, 1.0 / H), V, cfg)
    recount = _ttm_counts(corpus, align, state["zd"], state["y"], state["a"], K, V)
    for name, counts in recount.items():
        np.testing.assert_array_equal(state[name], counts, err_msg=name)
    n_docs, n_tok, n_tags = len(corpus.ptr) - 1, len(corpus.words), len(align.tag_h)
    assert state["mk"].sum() == n_docs and state["ny"].sum() == n_tok and state["c_p"].sum() == n_tags
    assert state["nk"].sum() + state["nb"][0] == n_tok
    # every hashtag is aligned to a token of its own post (a topical one unless align_to="all"),
    # and the switch moved some words
    a = state["a"]
    assert np.all((a >= align.tag_ptr[:-1]) & (a < align.tag_ptr[1:]))
    assert np.all(state["y"][align.pos[a]] == 1) == (align_to == "topical") and 0 < state["ny"][0] < n_tok
    assert mean["mk"].sum() == pytest.approx(n_docs)
    np.testing.assert_allclose(mean["c_pk"].sum(), n_tags, rtol=1e-5)  # one unit of posterior per hashtag


def test_translation_rows_are_distributions(fitted):
    """sum_h P(h | w, z) = 1 for every (z, w) of the table, through its sparse decomposition."""
    t = fitted.table_
    K, V = t.backoff_zw.shape
    topic = np.asarray(t.topic.sum(axis=1)).reshape(K, V)
    free = np.asarray(t.free.sum(axis=1)).ravel()
    rows = topic + t.backoff_zw * (free + t.backoff_w * t.prior.sum())
    np.testing.assert_allclose(rows[:, 2:], 1.0, rtol=1e-6)  # float32 table; ids 0, 1 are <pad>, <unk>
    assert t.topic.nnz > 0 and t.prior.sum() == pytest.approx(1.0)


def test_scores_equal_the_formula_computed_densely(fitted, slice_):
    """score(h, d) = sum_w P(w|d) sum_z P(z|.) P(h|w,z), each P(h|w,z) built as a dense row."""
    docs = tokenize_many([p.text for p in slice_[1][:3]])
    got = fitted._scores(docs)
    corpus = Corpus.encode(docs, fitted.vocab_)
    _seed(fitted.config.seed)
    ww, tp = fitted._token_topics(corpus)
    ww = ww * fitted.idf_[corpus.words]
    t = fitted.table_
    K, V = t.backoff_zw.shape
    want = np.zeros_like(got)
    for i, (d, w) in enumerate(zip(corpus.doc_of_token(), corpus.words)):
        norm = ww[corpus.ptr[d] : corpus.ptr[d + 1]].sum()
        for z in range(K):
            row = t.topic[z * V + w].toarray().ravel() + t.backoff_zw[z, w] * (
                t.free[w].toarray().ravel() + t.backoff_w[w] * t.prior
            )
            want[d] += ww[i] / norm * tp[i, z] * row
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-15)


def test_beats_the_popularity_floor(fitted, slice_):
    train, test = slice_
    floor = create("popularity").fit(train).evaluate(test, ks=(1, 3))
    got = fitted.evaluate(test, ks=(1, 3))
    for k in (1, 3):
        assert got[k].f1 > 1.5 * floor[k].f1 and got[k].f1 > floor[k].f1 + 0.015, (fitted.name, k, got[k], floor[k])


def test_save_load_round_trip(fitted, slice_, tmp_path):
    fitted.save(tmp_path / "m")
    loaded = Recommender.load(tmp_path / "m")
    assert type(loaded) is type(fitted) and loaded.get_params() == fitted.get_params()
    docs = tokenize_many([p.text for p in slice_[1][:50]])
    np.testing.assert_array_equal(loaded._scores(docs), fitted._scores(docs))


def test_same_seed_same_model(slice_):
    a, b = (TTM(**QUICK["ttm"]).fit(slice_[0][:300]) for _ in range(2))
    assert (a.table_.topic != b.table_.topic).nnz == 0
