"""Eq. 11 by hand on two posts."""

import pytest

from hashrec.metrics import evaluate_ranked


def test_eq11_micro_counts_all_gold_tags():
    gold = [["a", "b"], ["c", "unseen"]]
    ranked = [["a", "x", "b"], ["y", "z", "c"]]
    s = evaluate_ranked(gold, ranked, ks=[1, 3])
    assert (s[1].n_correct, s[1].precision, s[1].recall) == (1, 0.5, 0.25)
    assert s[1].f1 == pytest.approx(2 * 0.5 * 0.25 / 0.75)
    assert (s[3].n_correct, s[3].precision, s[3].recall) == (3, 0.5, 0.75)


def test_short_rankings_still_count_k_slots():
    s = evaluate_ranked([["a"]], [["a"]], ks=[2])
    assert s[2].precision == 0.5 and s[2].recall == 1.0


def test_mismatched_lengths_raise():
    with pytest.raises(ValueError):
        evaluate_ranked([["a"]], [], ks=[1])


def test_per_post_average_by_hand():
    from hashrec.metrics import evaluate_per_post

    s = evaluate_per_post([["a"], ["b", "c"]], [["a", "x"], ["x", "c"]], ks=[2])[2]
    assert (s.precision, s.recall) == (0.5, 0.75)
    assert s.f1 == pytest.approx((2 * 0.5 * 1 / 1.5 + 2 * 0.5 * 0.5 / 1.0) / 2)
