"""The stream: the reference stream reproduced, a user's stream split, the prequential replay, `hashrec update`,
and the online learning of popularity and nb (issue 21). Real posts: slices of ../shared/benchmarks/weibo-stream."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import itertools
import json
from datetime import date
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED

from hashrec import api
from hashrec.cli import main
from hashrec.data import Post, clean, day_seconds, load_split, post_record, prepare_stream, read_weibo_csv, write_jsonl
from hashrec.errors import ConfigError, DataError, OutputError
from hashrec.models import create
from hashrec.models.base import Recommender
from hashrec.stream import run

STREAM = SHARED / "benchmarks" / "weibo-stream"
WEIBO = SHARED / "data" / "weibo-covid19"


def _by_day(part: str, per_day: int, days: int) -> list[Post]:
    """The first `per_day` posts of each of the first `days` days of a reference part, in stream order."""
    taken: dict[str, int] = {}
    posts = []
    with gzip.open(STREAM / f"{part}.jsonl.gz", "rt", encoding="utf-8") as f:
        for line in f:
            o = json.loads(line)
            if len(taken) == days and o["time"] not in taken:
                break
            if taken.setdefault(o["time"], 0) < per_day:
                taken[o["time"]] += 1
                time = day_seconds(date.fromisoformat(o["time"]))
                posts.append(Post(o["text"], tuple(o["hashtags"]), time, o["user"]))
    return posts


@pytest.fixture(scope="module")
def reference() -> dict[str, list[Post]]:
    """The first 150 posts of each dev day (5) and of the first 3 test days of the reference stream."""
    return {"dev": _by_day("dev", 150, 5), "test": _by_day("test", 150, 3)}


@pytest.fixture(scope="module")
def small_stream(tmp_path_factory, reference) -> Path:
    """A stream directory: 2 days as warm-up, 3 days as dev, 3 days as test, 150 posts a day."""
    out = tmp_path_factory.mktemp("stream")
    write_jsonl(out / "warmup.jsonl.gz", reference["dev"][:300])
    write_jsonl(out / "dev.jsonl.gz", reference["dev"][300:])
    write_jsonl(out / "test.jsonl.gz", reference["test"])
    return out


# ---------------------------------------------------------------------------- the reference stream


def test_weibo_reader_fills_the_files_day_and_user():
    posts = list(itertools.islice(read_weibo_csv(WEIBO / "3.18.csv"), 50))
    assert all(p.time == day_seconds(date(2020, 3, 18)) for p in posts)
    assert posts[0].user == "4260552980" and all(p.user is None or p.user.strip() == p.user for p in posts)
    no_userid = next(read_weibo_csv(WEIBO / "4.7.csv"))  # this day's file has a text column only
    assert no_userid.user is None and no_userid.time == day_seconds(date(2020, 4, 7))


def test_reference_day_is_its_files_kept_posts_shuffled(reference):
    """The reference's first test day holds posts of 3.18.csv (text, hashtags, time, user), in another order."""
    day = [post_record(p) for p in clean(read_weibo_csv(WEIBO / "3.18.csv"))]
    ours = {json.dumps(r, ensure_ascii=False) for r in day}
    ref = [post_record(p) for p in reference["test"][:150]]  # its first day, 2020-03-18
    assert all(json.dumps(r, ensure_ascii=False) in ours for r in ref)
    assert [r["text"] for r in ref[:50]] != [r["text"] for r in day[:50]]


@pytest.mark.slow
def test_prepare_stream_reproduces_the_reference_checksums(tmp_path):
    """The whole protocol of weibo-stream/README.md: all three parts, byte for byte (about a minute)."""
    counts = prepare_stream("weibo-covid19", tmp_path, source=WEIBO)
    assert counts == {"warmup": 327_197, "dev": 36_199, "test": 54_290}
    expected = {
        "warmup": "1413e3cea60084ff6e425c6247dfe7e55cb1a24ee151b2f850fbd121dc903f98",
        "dev": "9546a1788caf545f2e69ea7520e98a576d549327e194d338b61c8015dafbba4d",
        "test": "4d48365cbd506bf89b4cecfd4699de88f7a335b70618d30359a9aad4d083c53c",
    }
    for part, sha in expected.items():
        with gzip.open(tmp_path / f"{part}.jsonl.gz", "rb") as f:
            assert hashlib.sha256(f.read()).hexdigest() == sha, part


def test_random_split_files_hold_text_and_hashtags_only(tmp_path):
    """The reader's time and user never reach the reference random splits (../shared/benchmarks/weibo)."""
    source = tmp_path / "src"
    source.mkdir()
    (source / "3.18.csv").symlink_to(WEIBO / "3.18.csv")
    api.prepare("weibo-covid19", tmp_path / "out", source=source, heldout=100)
    with gzip.open(tmp_path / "out" / "test.jsonl.gz", "rt", encoding="utf-8") as f:
        assert all(list(json.loads(line)) == ["text", "hashtags"] for line in f)


# ---------------------------------------------------------------------------- a user's stream


def _user_file(tmp_path: Path, posts: list[Post], times: list[object]) -> Path:
    path = tmp_path / "mine.jsonl"
    path.write_text(
        "".join(
            json.dumps({"text": p.text, "hashtags": list(p.hashtags), "time": t}, ensure_ascii=False) + "\n"
            for p, t in zip(posts, times)
        ),
        encoding="utf-8",
    )
    return path


def test_user_stream_sorts_stably_and_splits_by_count(tmp_path, reference):
    posts = reference["test"][:100]
    # hours in reverse file order, two posts an hour: the sort reverses the pairs and keeps each pair's order
    times = [
        f"2021-05-01T{23 - i // 4:02d}:00:00Z" if i % 2 == 0 else 1619913600 - 3600 * (1 + i // 4) for i in range(96)
    ]
    times += [None, "", None, None]  # no time: dropped and counted
    counts = prepare_stream(_user_file(tmp_path, posts, times), tmp_path / "out")
    assert counts == {"warmup": 68, "dev": 9, "test": 19, "no_time": 4}  # 96 dated: 20% test, 10% dev
    parts = {p: load_split(tmp_path / "out", p) for p in ("warmup", "dev", "test")}
    stream = parts["warmup"] + parts["dev"] + parts["test"]
    assert [p.time for p in stream] == sorted(p.time for p in stream)
    first_hour = [p.text for p in stream if p.time == stream[0].time]
    file_order = [p.text for p in posts if p.text in first_hour]
    assert first_hour == file_order


def test_user_stream_splits_at_given_times(tmp_path, reference):
    posts = reference["test"][:30]
    times = [f"2021-05-{1 + i // 10:02d}" for i in range(30)]
    counts = prepare_stream(
        _user_file(tmp_path, posts, times),
        tmp_path / "out",
        dev_from="2021-05-02",
        test_from="2021-05-03T00:00:00+00:00",
    )
    assert counts == {"warmup": 10, "dev": 10, "test": 10}  # a post at exactly --test-from is a test post


def test_bad_time_in_a_users_stream_names_file_and_line(tmp_path, reference, capsys):
    path = _user_file(tmp_path, reference["test"][:5], ["2021-05-01", "2021-05-02", "yesterday", "2021-05-03", 5])
    assert main(["data", "prepare", str(path), "--stream", "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert f"{path} line 3" in err and "'yesterday'" in err
    assert not (tmp_path / "out").exists()


def test_stream_of_undated_posts_is_refused(tmp_path, reference, capsys):
    path = _user_file(tmp_path, reference["test"][:5], [None] * 5)
    assert main(["data", "prepare", str(path), "--stream", "--out", str(tmp_path / "out")]) == 1
    assert "no post has a time" in capsys.readouterr().err


# ---------------------------------------------------------------------------- the prequential replay


def test_replay_never_lets_a_chunk_see_itself_or_later_posts(tmp_path, reference):
    """nb memorises: a post whose hashtag is its own is recommended that hashtag only from a later chunk."""
    own = [dataclasses.replace(p, hashtags=(f"own{i}",)) for i, p in enumerate(reference["test"][:120])]  # one day
    day = reference["test"][0].time
    again = [dataclasses.replace(p, time=day + 3600) for p in own[:60]]  # the same posts an hour later
    write_jsonl(tmp_path / "warmup.jsonl.gz", reference["dev"][:300])
    write_jsonl(tmp_path / "dev.jsonl.gz", own[:40])
    write_jsonl(tmp_path / "test.jsonl.gz", own[40:] + again)
    for model in ("nb", "popularity"):
        result = run(model, tmp_path, tmp_path / model, chunk=25)
        predictions = [json.loads(line)["hashtags"] for line in (tmp_path / model / "predictions.jsonl").open()]
        first = predictions[:80]
        assert all(f"own{i + 40}" not in ranked for i, ranked in enumerate(first)), model
        if model == "nb":  # the control: the repeats (in later chunks) are recommended their hashtag
            hits = sum(f"own{i}" == ranked[0] for i, ranked in enumerate(predictions[80:]))
            assert hits >= 50 and result["seen"]["posts"] == 60 and result["new"]["posts"] == 80


def test_report_fields_and_the_seen_new_split(tmp_path, small_stream):
    result = run("nb", small_stream, tmp_path / "out", chunk=100)
    saved = json.loads((tmp_path / "out" / "report.json").read_text(encoding="utf-8"))
    assert saved == json.loads(json.dumps(result))
    assert {"model", "protocol", "chunk", "all", "seen", "new", "ceiling", "per_day", "cost", "posts"} <= set(saved)
    assert saved["protocol"] == "stream" and saved["posts"] == {"warmup": 300, "dev": 450, "test": 450}
    assert saved["seen"]["posts"] + saved["new"]["posts"] == saved["all"]["posts"] == 450
    assert saved["ceiling"] == pytest.approx(saved["seen"]["posts"] / 450)
    correct = {part: round(saved[part]["micro"]["1"]["precision"] * saved[part]["posts"]) for part in ("seen", "new")}
    assert correct["seen"] + correct["new"] == round(saved["all"]["micro"]["1"]["precision"] * 450)
    assert set(saved["all"]["micro"]) == {"1", "2", "3", "4", "5"}
    assert [row["posts"] for row in saved["per_day"]] == [150, 150, 150]
    assert {"recommend_ms_per_post", "learn_ms_per_post", "warmup_fit_s"} <= set(saved["cost"])
    lines = (tmp_path / "out" / "predictions.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 450 and all(len(json.loads(line)["hashtags"]) == 5 for line in lines)
    assert (tmp_path / "out" / "per_day.png").read_bytes()[:4] == b"\x89PNG"


def test_static_baseline_never_learns_after_warmup(tmp_path, small_stream, monkeypatch):
    model_dir = tmp_path / "nb"
    create("nb").fit(load_split(small_stream, "warmup")).save(model_dir)
    calls = []
    monkeypatch.setattr(Recommender, "update", lambda self, posts: calls.append(len(posts)))
    result = run(str(model_dir), small_stream, tmp_path / "out", baseline="static")
    assert calls == [] and result["protocol"] == "static" and result["cost"]["learn_ms_per_post"] == 0
    frozen = Recommender.load(model_dir)
    test = load_split(small_stream, "test")
    expected = [[t for t, _ in r] for r in frozen.recommend([p.text for p in test], 5)]
    got = [json.loads(line)["hashtags"] for line in (tmp_path / "out" / "predictions.jsonl").open()]
    assert got == expected


def test_daily_baseline_refits_at_each_new_day(tmp_path, small_stream, monkeypatch):
    fits = []
    original = Recommender.fit
    monkeypatch.setattr(
        Recommender, "fit", lambda self, train, dev=None: fits.append(len(train)) or original(self, train, dev)
    )
    result = run("popularity", small_stream, tmp_path / "out", baseline="daily", chunk=70)
    # warm-up (2 days), then before each scored (test) day: every earlier post, 150 a day
    assert fits == [300, 300 + 450, 300 + 600, 300 + 750] and result["cost"]["refits"] == 3
    fits.clear()
    result = run("popularity", small_stream, tmp_path / "dev", baseline="daily", chunk=70, score="dev")
    assert fits == [300, 450, 600] and result["cost"]["refits"] == 2  # scoring dev: its 2nd and 3rd day


def test_a_static_model_runs_as_static_under_the_default_protocol(tmp_path, small_stream):
    result = run("lda", small_stream, tmp_path / "out", params={"topics": 5, "sweeps": 2, "iterations": 2})
    assert result["protocol"] == "static" and "cannot learn" in result["note"]


def test_stream_refuses_a_bad_chunk_and_set_on_a_directory(tmp_path, small_stream):
    with pytest.raises(ConfigError, match="--chunk"):
        run("nb", small_stream, tmp_path / "out", chunk=0)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(OutputError, match="holds files hashrec did not write"):
        run("nb", small_stream, tmp_path / "mine")
    create("nb").fit(load_split(small_stream, "warmup")).save(tmp_path / "nb")
    with pytest.raises(ConfigError, match="--set applies"):
        run(str(tmp_path / "nb"), small_stream, tmp_path / "out", params={"alpha": 0.1})


# ---------------------------------------------------------------------------- learning online


@pytest.mark.parametrize("merge_share", [0.0, 10.0])  # new counts merged at once, or kept pending
def test_nb_update_equals_a_fit_on_all_posts(reference, monkeypatch, tmp_path, merge_share):
    from hashrec.models.nb import NaiveBayes

    monkeypatch.setattr(NaiveBayes, "MERGE_SHARE", merge_share)
    first, later = reference["dev"][:300], reference["dev"][300:600]
    online = create("nb").fit(first).update(later[:120]).update(later[120:])
    online.save(tmp_path / "nb")
    assert Recommender.load(tmp_path / "nb").recommend("武汉加油", 5) == online.recommend("武汉加油", 5)
    batch = create("nb").fit(first + later)
    texts = [p.text for p in reference["test"][:50]]
    assert sorted(online.labels_) == sorted(batch.labels_)
    everything = len(batch.labels_)  # compared hashtag by hashtag: equal scores may rank in either order
    for a, b in zip(online.recommend(texts, everything), batch.recommend(texts, everything)):
        a, b = dict(a), dict(b)
        assert np.allclose([a[t] for t in batch.labels_], [b[t] for t in batch.labels_])
    assert len(online.vocab_) == len(batch.vocab_) > len(create("nb").fit(first).vocab_)  # new words joined


def test_trending_popularity_scores_as_of_a_time(tmp_path, reference):
    posts = reference["dev"][:300] + reference["test"][:300]
    model = create("popularity", tau=0.5).fit(posts[:300])
    model.update(posts[300:])
    before, after = reference["dev"][0].time, reference["test"][0].time
    fitted = create("popularity", tau=0.5).fit(posts[:300])
    assert model.recommend("x", 3, at=before) == fitted.recommend("x", 3, at=before) != fitted.recommend("x", 3)
    top_after = model.recommend("x", 3, at=after)[0]
    assert top_after[0][0] in {t for p in posts[300:] for t in p.hashtags}
    model.save(tmp_path / "m")
    assert Recommender.load(tmp_path / "m").recommend("x", 3, at=after)[0] == top_after
    plain = create("popularity").fit(posts)  # tau None: plain counts, as in the random-split benchmarks
    assert np.allclose(plain.prior_, plain.label_counts_ / plain.label_counts_.sum())


# ---------------------------------------------------------------------------- hashrec update / recommend --at


def _sha(model_dir: Path) -> str:
    return hashlib.sha256((model_dir / "model.json").read_bytes()).hexdigest()


def test_update_cli_learns_in_place_and_keeps_the_model_on_bad_input(tmp_path, reference, capsys):
    model_dir = tmp_path / "pop"
    create("popularity", tau=0.5).fit(reference["dev"][:200]).save(model_dir)
    new = tmp_path / "new.jsonl"
    write_jsonl(new, reference["test"][:100])
    assert main(["update", "--model", str(model_dir), "--data", str(new), "--out", str(model_dir)]) == 0
    assert Recommender.load(model_dir).trained_on_["n_updates"] == 100
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.jsonl", "pop"]  # no temporary left behind
    before = _sha(model_dir)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        new.read_text(encoding="utf-8").splitlines()[0] + '\n{"text": "x", "time": "soon"}\n', encoding="utf-8"
    )
    assert main(["update", "--model", str(model_dir), "--data", str(bad), "--out", str(model_dir)]) == 1
    assert f"{bad} line 2" in capsys.readouterr().err and _sha(model_dir) == before


def test_update_refuses_to_replace_a_folder_that_is_not_a_model(tmp_path, reference, capsys):
    model_dir, other = tmp_path / "pop", tmp_path / "docs"
    create("popularity").fit(reference["dev"][:200]).save(model_dir)
    other.mkdir()
    (other / "notes.txt").write_text("mine", encoding="utf-8")
    new = tmp_path / "new.jsonl"
    write_jsonl(new, reference["test"][:10])
    assert main(["update", "--model", str(model_dir), "--data", str(new), "--out", str(other)]) == 1
    assert "holds files hashrec did not write" in capsys.readouterr().err
    assert (other / "notes.txt").read_text(encoding="utf-8") == "mine"


def test_update_refuses_a_static_model(tmp_path, reference):
    model = create("lda", topics=5, sweeps=2, iterations=2).fit(reference["dev"][:200])
    with pytest.raises(ConfigError, match="static"):
        api.update(model, reference["test"][:10])
    with pytest.raises(DataError, match="no post with a hashtag"):
        api.update(create("nb").fit(reference["dev"][:200]), [Post("no tags", ())])


def test_recommend_cli_at_a_time(tmp_path, reference, capsys):
    model_dir = tmp_path / "pop"
    create("popularity", tau=0.25).fit(reference["dev"][:300] + reference["test"][:300]).save(model_dir)
    answers = {}
    for at in ("2020-03-13", "2020-03-18T12:00:00+00:00"):
        assert (
            main(["recommend", "--model", str(model_dir), "--at", at, "--json", "-k", "1", "--user", "u1", "武汉加油"])
            == 0
        )
        answers[at] = json.loads(capsys.readouterr().out)["hashtags"]
    assert answers["2020-03-13"] != answers["2020-03-18T12:00:00+00:00"]
    assert answers["2020-03-13"][0] in {t for p in reference["dev"][:300] for t in p.hashtags}
    assert main(["recommend", "--model", str(model_dir), "--at", "someday", "x"]) == 1
    assert "someday" in capsys.readouterr().err


def test_saving_over_a_model_swaps_it_in_one_step(tmp_path, reference, monkeypatch):
    """`hashrec update --out M` with M the model itself: the new directory and the old are exchanged at once
    (renameat2), so no moment leaves M absent; the two-move fallback is not needed on this system."""
    import os

    model_dir = tmp_path / "pop"
    create("popularity").fit(reference["dev"][:100]).save(model_dir)
    replace = os.replace
    monkeypatch.setattr(
        os,
        "replace",
        lambda a, b: (
            (_ for _ in ()).throw(AssertionError("moved aside"))
            if Path(a) == model_dir or Path(b) == model_dir
            else replace(a, b)
        ),
    )
    api.update(model_dir, reference["test"][:50], model_dir)
    assert Recommender.load(model_dir).trained_on_["n_updates"] == 50
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pop"]


def test_prepare_stream_and_update_take_the_time_and_user_fields(tmp_path, reference):
    path = tmp_path / "mine.csv"
    rows = ["body,tags,posted,author"] + [
        f'"{p.text}",{";".join(p.hashtags)},{int(p.time) + i},u{i % 3}' for i, p in enumerate(reference["test"][:40])
    ]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    fields = ["--text-field", "body", "--hashtags-field", "tags", "--time-field", "posted", "--user-field", "author"]
    assert main(["data", "prepare", str(path), "--stream", "--out", str(tmp_path / "s"), *fields]) == 0
    test = load_split(tmp_path / "s", "test")
    assert len(test) == 8 and test[0].user in {"u0", "u1", "u2"} and test[0].time > reference["test"][0].time
    create("nb").fit(load_split(tmp_path / "s", "warmup")).save(tmp_path / "nb")
    assert (
        main(["update", "--model", str(tmp_path / "nb"), "--data", str(path), "--out", str(tmp_path / "nb2"), *fields])
        == 0
    )
    assert Recommender.load(tmp_path / "nb2").trained_on_["n_updates"] == 40


def test_nb_without_new_words_keeps_its_vocabulary(reference):
    model = create("nb", new_words=False).fit(reference["dev"][:300])
    size = len(model.vocab_)
    model.update(reference["dev"][300:600])
    assert len(model.vocab_) == size and model.recommend("武汉加油", 1)[0]
