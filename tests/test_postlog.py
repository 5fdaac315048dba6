"""The live server's post log (hashrec.postlog): order, durability across reopening, forgetting, trending."""

from __future__ import annotations

import pytest

from hashrec.data import Post
from hashrec.errors import DataError
from hashrec.postlog import PostLog, parse_duration, rising

HOUR = 3600.0


@pytest.fixture
def postlog(tmp_path):
    log = PostLog(tmp_path / "state")
    yield log
    log.close()


def test_batches_come_back_in_order_with_their_fields(tmp_path, weibo_sample):
    posts = [Post(p.text, p.hashtags, 1584489600.0 + i, f"u{i}") for i, p in enumerate(weibo_sample["train"][:30])]
    log = PostLog(tmp_path)
    assert log.append(posts[:10], arrival=1.0) == 10
    assert log.append(posts[10:], arrival=2.0) == 30
    log.close()
    again = PostLog(tmp_path)  # what was committed is there for another connection (a restart)
    rows = again.read_after(0)
    assert [i for i, _ in rows] == list(range(1, 31))
    assert [p for _, p in rows] == posts
    assert [p for _, p in again.read_after(25)] == posts[25:]
    assert sum(len(b) for b in again.iter_after(0, batch=7)) == 30
    assert again.last_id() == 30 and again.count() == 30


def test_a_post_without_a_time_counts_by_its_arrival(postlog):
    postlog.append([Post("a", ("x",)), Post("b", ("y",), 100.0)], arrival=5000.0)
    assert postlog.span() == (100.0, 5000.0)
    assert postlog.tag_counts(4000.0, 6000.0) == {"x": 1}


def test_forgetting_deletes_old_posts_and_never_reuses_their_ids(postlog):
    postlog.append([Post("old", ("x",), 0.0), Post("new", ("y",), 10 * HOUR)], arrival=1.0)
    assert postlog.forget_before(HOUR) == 1
    assert [p.text for _, p in postlog.read_after(0)] == ["new"]
    assert postlog.tag_counts(0.0, 20 * HOUR) == {"y": 1}
    assert postlog.append([Post("newer", ("z",), 11 * HOUR)], arrival=2.0) == 3
    postlog.forget_before(100 * HOUR)
    assert postlog.count() == 0 and postlog.last_id() == 3 and postlog.span() is None


def test_rising_ranks_a_burst_above_a_steady_hashtag(postlog):
    steady = [Post(f"s{h}", ("steady",), h * HOUR) for h in range(24) for _ in range(3)]
    burst = [Post(f"b{i}", ("burst",), 24 * HOUR) for i in range(4)]
    postlog.append(steady + [Post("s", ("steady",), 24 * HOUR)] * 3 + burst, arrival=0.0)
    top = rising(postlog, HOUR, 20)
    assert [r["hashtag"] for r in top] == ["burst"]  # steady: 3 in the hour, 3 expected: not rising
    assert top[0]["count"] == 4 and top[0]["expected"] == 0
    assert rising(PostLog(postlog.path.parent / "empty"), HOUR, 5) == []


@pytest.mark.parametrize("text,seconds", [("90s", 90), ("30m", 1800), ("1h", 3600), ("1.5d", 129600)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "1", "h", "0h", "-1h", "1w", "1 h x"])
def test_bad_durations_say_what_to_write(text):
    with pytest.raises(DataError, match="unit"):
        parse_duration(text)


def test_an_unwritable_state_directory_is_a_clear_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataError, match="--state"):
        PostLog(tmp_path / "file")
