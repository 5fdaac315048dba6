"""Data preparation: extraction rules, the reference splits reproduced exactly, user files, errors."""

from __future__ import annotations

import gzip
import json

import pytest
from conftest import SHARED

from hashrec.cli import main
from hashrec.data import Post, extract, extract_twitter, extract_weibo, load_split, prepare, read_user_file
from hashrec.errors import DataError


def test_weibo_extraction_strips_tags_and_leftovers():
    post = extract_weibo("#武汉加油# 大家好 #武汉加油##  钟南山 #收起全文d L张三的微博视频 ?")
    assert post == Post("大家好", ("武汉加油", "钟南山"))


def test_twitter_extraction_lowercases_and_skips_truncated_and_semst():
    post = extract_twitter("#Love this #sunset at the beach #SemST #beachlif… ok#no")
    assert post.hashtags == ("love", "sunset")
    assert post.text == "this at the beach ok"  # the reference rule removes every #\w+ span


def test_auto_style_picks_weibo_for_chinese():
    assert extract("#疫情# 武汉加油").hashtags == ("疫情",)
    assert extract("stay home #covid").hashtags == ("covid",)


def _read(path):
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


@pytest.mark.parametrize(
    "name,source,bench,full_train",
    [
        ("tweeteval", "tweeteval", "tweeteval", 46_173),
        ("weibo-covid19", "weibo-covid19", "weibo", 397_686),  # weibo-full; the benchmark keeps its first 100k
    ],
)
def test_prepare_reproduces_reference_splits(tmp_path, name, source, bench, full_train):
    counts = prepare(name, tmp_path, source=SHARED / "data" / source)
    assert counts["train"] == full_train
    for part in ("train", "dev", "test"):
        ref = _read(SHARED / "benchmarks" / bench / f"{part}.jsonl.gz")
        ours = _read(tmp_path / f"{part}.jsonl.gz")[: len(ref)]
        first_diff = next((i for i, (a, b) in enumerate(zip(ours, ref)) if a != b), None)
        assert ours == ref, f"{bench}/{part}: first difference at line {first_diff}"


def test_prepare_weibo_hashtaggen(tmp_path):
    counts = prepare("weibo-hashtaggen", tmp_path, source=SHARED / "data" / "weibo-hashtaggen")
    assert counts["test"] == counts["dev"] and sum(counts.values()) > 7000
    post = load_split(tmp_path, "test")[0]
    assert post.hashtags and all(" " not in t for t in post.hashtags)


def test_user_jsonl_without_hashtags_field_extracts_them(tmp_path):
    path = tmp_path / "posts.jsonl"
    lines = [{"text": f"post number {i} about #topic{i % 3}"} for i in range(30)]
    path.write_text("\n".join(json.dumps(x) for x in lines), encoding="utf-8")
    counts = prepare(path, tmp_path / "out")
    assert counts == {"test": 3, "dev": 3, "train": 24}
    assert all(p.hashtags[0].startswith("topic") and "#" not in p.text for p in load_split(tmp_path / "out", "train"))


def test_user_csv_and_txt(tmp_path):
    csv_path = tmp_path / "p.csv"
    csv_path.write_text('text,hashtags\n"hello, world",a;#b\nbye,\n', encoding="utf-8")
    assert list(read_user_file(csv_path)) == [Post("hello, world", ("a", "b")), Post("bye", ())]
    txt = tmp_path / "p.txt.gz"
    with gzip.open(txt, "wt", encoding="utf-8") as f:
        f.write("#疫情# 武汉加油\nplain #tag here\n")
    assert list(read_user_file(txt)) == [Post("武汉加油", ("疫情",)), Post("plain here", ("tag",))]


@pytest.mark.parametrize(
    "content,message",
    [
        ('{"text": "ok", "hashtags": ["a"]}\n{"text": "bad"\n', "line 2: not valid JSON"),
        ('{"text": "ok", "hashtags": "a"}\n', "line 1: 'hashtags' must be a list of strings"),
        ('{"body": "ok"}\n', "line 1: expected an object with a string 'text' field"),
    ],
)
def test_malformed_jsonl_names_file_and_line(tmp_path, content, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=message):
        list(read_user_file(path))


def test_invalid_utf8_names_the_line(tmp_path):
    path = tmp_path / "gbk.jsonl"
    path.write_bytes(b'{"text": "ok #a"}\n' + '{"text": "武汉 #b"}\n'.encode("gb18030"))
    with pytest.raises(DataError, match="line 2: not valid UTF-8"):
        list(read_user_file(path))


def test_csv_without_text_column(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("body\nhello #a\n", encoding="utf-8")
    with pytest.raises(DataError, match="no 'text' column"):
        list(read_user_file(path))


def test_dataset_without_hashtags_is_refused(tmp_path, capsys):
    path = tmp_path / "plain.txt"
    path.write_text("no tags here\nnor here\n", encoding="utf-8")
    assert main(["data", "prepare", str(path), "--out", str(tmp_path / "o")]) == 1
    assert "not a single post with both text and a hashtag" in capsys.readouterr().err


def test_empty_file_is_refused(tmp_path, capsys):
    path = tmp_path / "empty.jsonl"
    path.write_text("", encoding="utf-8")
    assert main(["data", "prepare", str(path), "--out", str(tmp_path / "o")]) == 1
    assert "error" in capsys.readouterr().err


def test_split_by_time_tests_on_the_latest_days(tmp_path):
    counts = prepare(
        "weibo-covid19",
        tmp_path,
        source=SHARED / "data" / "weibo-covid19",
        by_time=True,
        heldout=2000,
        train_size=20000,
    )
    assert counts == {"test": 2000, "dev": 2000, "train": 20000}
    from hashrec.data import read_weibo_covid19

    last_day = [p.text for p in read_weibo_covid19(SHARED / "data" / "weibo-covid19", chronological=True)][-50000:]
    test_texts = {p.text for p in load_split(tmp_path, "test")}
    assert len(test_texts & set(last_day)) == 2000  # all from the latest posts


def test_fraction_and_stats(tmp_path, capsys):
    path = tmp_path / "posts.jsonl"
    path.write_text("\n".join(json.dumps({"text": f"post {i} #t{i % 4}"}) for i in range(40)), encoding="utf-8")
    assert prepare(path, tmp_path / "o", fraction=0.2) == {"test": 8, "dev": 8, "train": 24}
    assert main(["data", "stats", str(tmp_path / "o"), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["train"]["posts"] == 24 and stats["test"]["gold_seen_in_train"] == 1.0
    assert stats["train"]["hashtags_per_post"] == 1.0


def _prepare_cli(path, out, capsys, *more) -> tuple[int, str, str]:
    code = main(["data", "prepare", str(path), "--out", str(out), *map(str, more)])
    stdout, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, stdout, err


def test_prepare_says_what_it_dropped_and_why(tmp_path, capsys):
    rows = (
        [{"text": f"post {i} #t{i % 3}"} for i in range(30)]
        + [{"text": "post 1 #t1"}] * 4
        + [{"text": "no tag at all"}] * 2
        + [{"text": "#t1"}]
    )
    path = tmp_path / "p.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + '\n{"text": broken\n', encoding="utf-8")
    code, out, _ = _prepare_cli(path, tmp_path / "o", capsys)
    assert code == 0 and "kept 30 of 38 rows read" in out
    assert "dropped 4: duplicate text" in out and "dropped 2: no hashtag" in out and "dropped 1: empty text" in out
    assert f"dropped 1: malformed row (first: {path} line 38: not valid JSON" in out


def test_csv_as_excel_exports_it(tmp_path):
    """Excel's "CSV UTF-8" (a byte-order mark) and a ';'-delimited file read as their comma form does."""
    rows = ["text;hashtags", "hello, world;New York, NY|#b", "second post;"]
    (tmp_path / "semi.csv").write_bytes(b"\xef\xbb\xbf" + "\r\n".join(rows).encode())
    (tmp_path / "tab.csv").write_text("\n".join(r.replace(";", "\t") for r in rows), encoding="utf-8")
    want = [Post("hello, world", ("New York, NY", "b")), Post("second post", ())]
    assert list(read_user_file(tmp_path / "semi.csv")) == list(read_user_file(tmp_path / "tab.csv")) == want


def test_csv_hashtag_cells(tmp_path):
    """`;` or `|` separate hashtags, a comma does not; `#a #b` and `#话题#` forms; an empty cell falls back
    to the text's inline hashtags."""
    path = tmp_path / "p.csv"
    path.write_text('text,hashtags\none,"#a #b"\ntwo,#武汉# #加油#\nthree #inline,\n四 #疫情#,\n', encoding="utf-8")
    assert [p.hashtags for p in read_user_file(path)] == [("a", "b"), ("武汉", "加油"), ("inline",), ("疫情",)]


def test_csv_row_with_extra_cells_is_counted_or_named(tmp_path, capsys):
    path = tmp_path / "p.csv"
    path.write_text(
        "text,hashtags\n" + "".join(f"post {i},t{i % 3}\n" for i in range(30)) + "cut, short,t1\n", encoding="utf-8"
    )
    with pytest.raises(DataError, match="line 32: 3 cells, the header has 2"):
        list(read_user_file(path))  # recommend --input: stops at the row, naming it
    code, out, _ = _prepare_cli(path, tmp_path / "o", capsys)
    assert code == 0 and "kept 30 of 31 rows read" in out and "dropped 1: malformed row" in out


def test_prepare_time_and_user_fields(tmp_path, capsys):
    path = tmp_path / "p.csv"
    rows = [f"post {i},t{i % 3},2020-03-{1 + i % 28:02d},u{i % 5}" for i in range(30)]
    path.write_text("body,tags,when,who\n" + "\n".join(rows) + "\n", encoding="utf-8")
    fields = ["--text-field", "body", "--hashtags-field", "tags", "--time-field", "when", "--user-field", "who"]
    assert _prepare_cli(path, tmp_path / "o", capsys, *fields)[0] == 0
    posts = load_split(tmp_path / "o", "train") + load_split(tmp_path / "o", "test")
    assert all(p.time is not None and p.user.startswith("u") for p in posts)
    path.write_text(path.read_text(encoding="utf-8").replace("2020-03-05", "5 March"), encoding="utf-8")
    code, _, err = _prepare_cli(path, tmp_path / "o", capsys, *fields)
    assert code == 1 and f"{path} line 6: time '5 March'" in err


def test_hashtags_of_the_wrong_type_say_what_they_hold(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"text": "a", "hashtags": [1, 2]}\n', encoding="utf-8")
    with pytest.raises(DataError, match="a list of strings, got a list holding int"):
        list(read_user_file(path))


@pytest.mark.parametrize("option", ["--heldout", "--train-size"])
def test_sizes_must_be_positive(tmp_path, capsys, option):
    path = tmp_path / "p.jsonl"
    path.write_text("\n".join(json.dumps({"text": f"post {i} #t{i % 3}"}) for i in range(30)), encoding="utf-8")
    code, _, err = _prepare_cli(path, tmp_path / "o", capsys, option, -1)
    assert code == 1 and f"{option} must be a positive number of posts, got -1" in err
