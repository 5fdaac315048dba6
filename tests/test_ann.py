"""hashrec.models.ann: approximate neighbours against exact cosine on real posts; adding and removing online."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from hashrec.models.ann import ANNConfig, RowStore, SparseANN, sketch
from hashrec.models.bow import count_matrix, inverse_document_frequency, tfidf
from hashrec.tokens import Vocab, tokenize_many


@pytest.fixture(scope="module")
def space(weibo_sample):
    """Unit TF-IDF rows of 2,800 real posts (the index) and of 200 more (the queries)."""
    docs = tokenize_many([p.text for p in weibo_sample["train"][:3000]])
    vocab = Vocab.build(docs[:2800])
    X = count_matrix(docs[:2800], vocab)
    idf = inverse_document_frequency(X)
    return tfidf(X, idf), tfidf(count_matrix(docs[2800:], vocab), idf)


def test_nearly_every_exact_neighbour_is_found(space):
    train, queries = space
    ann = SparseANN(ANNConfig(dim=64))
    ann.add(train)
    keys, sims = ann.search(queries, 20)
    exact = (queries @ train.T).toarray()
    kth = -np.sort(-exact, axis=1)[:, 19:20]
    got = np.take_along_axis(exact, np.maximum(keys, 0), 1)
    hits = ((got >= kth - 1e-9) & (got > 0) & (keys >= 0)).sum(axis=1)
    wanted = np.minimum(20, (exact > 0).sum(axis=1))
    assert hits.sum() / wanted.sum() >= 0.95
    assert np.allclose(sims[keys >= 0], got[keys >= 0])  # the cosines returned are the exact ones
    full = np.isfinite(sims).all(axis=1)
    assert (np.diff(sims[full], axis=1) <= 1e-12).all()  # best first


def test_rows_added_later_are_found_and_removed_ones_never(space):
    train, queries = space
    ann = SparseANN(ANNConfig(dim=32))
    ann.add(train[:1000])
    ann.add(train[1000:])
    target = queries[:1]
    assert ann.add(target)[0] == train.shape[0]  # keys continue in order
    keys, sims = ann.search(target, 5)
    assert keys[0, 0] == train.shape[0] and sims[0, 0] == pytest.approx(1.0)
    ann.remove(keys[0, :3])
    again, _ = ann.search(target, 5)
    assert not set(again[0].tolist()) & set(keys[0, :3].tolist())


def test_a_query_without_known_words_has_no_neighbours(space):
    train, _ = space
    ann = SparseANN(ANNConfig(dim=32))
    ann.add(train)
    keys, sims = ann.search(sp.csr_matrix((1, train.shape[1])), 3)
    assert (keys == -1).all() and np.isneginf(sims).all()


def test_sketches_keep_inner_products_on_average_and_rows_come_back(space):
    train, _ = space
    rows = train[:400]
    z = sketch(rows, 2048, 2)
    exact, approx = (rows @ rows.T).toarray(), z @ z.T
    assert np.abs(exact - approx).mean() < 0.03
    store = RowStore()
    store.append(rows[:150])
    store.append(rows[150:])
    picked = np.array([399, 0, 7, 7])
    assert np.allclose(store.take(picked).toarray(), rows[picked].toarray(), atol=1e-7)  # float32
