"""Bad input on every command-line entry point: a correct answer or a clear error, never a traceback."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from hashrec.cli import main
from hashrec.data import Post, write_jsonl
from hashrec.tokens import _cache_key, cache_dir, tokenize_many

ODD_TEXTS = {
    "empty": "",
    "whitespace": " \t\u3000 ",
    "hashtags only": "#武汉加油# #tbt",
    "emoji only": "😷🙏🏻❤️",
    "nul bytes": "武汉\x00加油\x00 hello",
    "mixed languages": "今天 Wuhan 加油 stay strong 💪 #covid19",
    "one megabyte": "武汉加油，致敬医护人员。" * 87_000,
}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, small_split) -> Path:
    out = tmp_path_factory.mktemp("m") / "pop"
    assert main(["train", "--model", "popularity", "--data", str(small_split), "--out", str(out)]) == 0
    return out


def _run(args: list[str], capsys) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


@pytest.mark.parametrize("name", list(ODD_TEXTS))
def test_recommend_odd_text_answers(model_dir, capsys, name):
    code, out, _ = _run(["recommend", "--model", model_dir, "-k", "3", "--json", ODD_TEXTS[name]], capsys)
    assert code == 0
    assert len(json.loads(out)["hashtags"]) == 3


def test_recommend_input_with_invalid_bytes_names_the_line(model_dir, tmp_path, capsys):
    path = tmp_path / "posts.txt"
    path.write_bytes("武汉加油\n".encode() + b"\xff\xfe bad\n" + b"ok\n")
    code, out, err = _run(["recommend", "--model", model_dir, "--input", path, "--json"], capsys)
    assert code == 1 and "line 2: not valid UTF-8" in err
    assert json.loads(out.splitlines()[0])["text"] == "武汉加油"  # answered before the bad line: nothing lost


def test_recommend_streams_json_lines_in_input_order(model_dir, tmp_path, capsys):
    path = tmp_path / "posts.jsonl.gz"
    write_jsonl(path, [Post(f"武汉 第{i}条", ()) for i in range(600)])
    code, out, _ = _run(["recommend", "--model", model_dir, "--input", path, "--json", "-k", "2"], capsys)
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [r["text"] for r in rows] == [f"武汉 第{i}条" for i in range(600)]
    assert all([set(h) for h in r["hashtags"]] == [{"hashtag", "score", "confidence"}] * 2 for r in rows)


@pytest.mark.parametrize("k,ok", [(0, False), (-3, False), (10**6, True)])
def test_recommend_k_range(model_dir, capsys, k, ok):
    code, out, err = _run(["recommend", "--model", model_dir, "-k", k, "--json", "武汉"], capsys)
    assert (code == 0) == ok
    if not ok:
        assert "k must be a positive integer" in err


def test_evaluate_counts_unseen_gold_hashtags(model_dir, tmp_path, capsys):
    test = tmp_path / "t.jsonl"
    write_jsonl(test, [Post("武汉加油", ("never-seen-in-training",)), Post("致敬", ("最新疫情地图",))])
    code, out, _ = _run(["evaluate", "--model", model_dir, "--data", test, "-k", "1", "--json"], capsys)
    report = json.loads(out)
    micro = report["micro"]["1"]
    assert code == 0 and report["posts"] == 2 and set(report["per_post"]) == {"1"}
    assert micro["recall"] in (0.0, 0.5) and micro["precision"] == micro["recall"]  # 2 gold tags, 1 unseen


@pytest.mark.parametrize(
    "content,message",
    [
        ("", "no posts"),
        ('{"text": "a", "hashtags": []}\n', "not a single post has a hashtag"),
        ('{"text": "a", "hashtags": ["x"]}\nnot json\n', "line 2: not valid JSON"),
    ],
)
def test_evaluate_bad_files(model_dir, tmp_path, capsys, content, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(content, encoding="utf-8")
    code, _, err = _run(["evaluate", "--model", model_dir, "--data", path], capsys)
    assert code == 1 and message in err


def test_train_errors_name_the_problem(tmp_path, capsys):
    code, _, err = _run(["train", "--model", "popularity", "--data", tmp_path, "--out", tmp_path / "m"], capsys)
    assert code == 1 and "no train.jsonl" in err
    write_jsonl(tmp_path / "train.jsonl", [Post("a", ()), Post("b", ())])
    code, _, err = _run(["train", "--model", "popularity", "--data", tmp_path, "--out", tmp_path / "m"], capsys)
    assert code == 1 and "not a single post has a hashtag" in err
    write_jsonl(tmp_path / "train.jsonl", [Post("a", ("x",))])
    code, _, err = _run(
        ["train", "--model", "popularity", "--data", tmp_path, "--out", tmp_path / "m", "--set", "nonsense=1"], capsys
    )
    assert code == 1 and "unknown option 'nonsense'" in err


def test_prepare_gb18030_file_names_line(tmp_path, capsys):
    path = tmp_path / "weibo.csv"
    path.write_bytes("text\n#疫情# 武汉加油\n".encode("gb18030"))
    code, _, err = _run(["data", "prepare", path, "--out", tmp_path / "o"], capsys)
    assert code == 1 and "line 2: not valid UTF-8" in err and "iconv" in err


def test_loading_a_non_model_directory(tmp_path, capsys):
    code, _, err = _run(["recommend", "--model", tmp_path, "x"], capsys)
    assert code == 1 and "not a hashrec model directory" in err


def test_damaged_token_cache_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("HASHREC_CACHE", str(tmp_path))
    texts = [f"post {i} about 武汉" for i in range(6000)]
    first = tokenize_many(texts, workers=1)
    path = cache_dir() / "tokens" / f"{_cache_key(texts)}.json.gz"
    assert path.is_file()
    path.write_bytes(b"garbage")
    assert tokenize_many(texts, workers=1) == first
    with gzip.open(path, "rt", encoding="utf-8") as f:
        assert json.load(f) == first


@pytest.mark.parametrize("k", [0, -1, 10**9])
def test_evaluate_k_range(model_dir, small_split, capsys, k):
    code, _, err = _run(["evaluate", "--model", model_dir, "--data", small_split, "-k", k], capsys)
    assert code == 1 and ("k must be a positive integer" in err or "K at most 100" in err)


@pytest.mark.parametrize(
    "command", [["recommend", "x", "--model"], ["data", "stats"], ["evaluate", "--model", "x", "--data"]]
)
def test_os_error_is_a_message_naming_the_path(command, capsys):
    name = "a" * 300  # longer than a file name may be: ENAMETOOLONG from the first stat
    code, _, err = _run([*command, name], capsys)
    assert code == 1 and f"hashrec: error: {name}" in err and "File name too long" in err


@pytest.mark.parametrize("command", [["train"], ["serve"], ["evaluate"], ["data", "prepare"], ["compare"]])
def test_help_shows_no_none_defaults_and_every_option_has_help(command, capsys):
    with pytest.raises(SystemExit):
        main([*command, "--help"])
    out = capsys.readouterr().out
    assert "(default: None)" not in out
    assert "TCP port to listen on" in out or command != ["serve"]
