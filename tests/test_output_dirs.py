"""No command deletes or overwrites what it did not make; a bad --out is refused before any work."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from hashrec.cli import main
from hashrec.errors import OutputError
from hashrec.store import MARKER, check_output_dir, claim_output_dir


def _run(args: list, capsys) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def _train(data: Path, out: Path | str, capsys, *more: str) -> tuple[int, str, str]:
    return _run(["train", "--model", "popularity", "--data", data, "--out", out, *more], capsys)


@pytest.fixture()
def posts_file(tmp_path) -> Path:
    path = tmp_path / "posts.jsonl"
    path.write_text("\n".join(json.dumps({"text": f"post {i} #t{i % 3}"}) for i in range(30)), encoding="utf-8")
    return path


def test_train_refuses_a_folder_with_other_files_and_keeps_them(small_split, tmp_path, capsys):
    runs = tmp_path / "runs"
    assert _train(small_split, runs / "a", capsys)[0] == 0
    (runs / "notes.txt").write_text("mine")
    code, _, err = _train(small_split, runs, capsys)
    assert code == 1 and "holds files hashrec did not write (a, notes.txt)" in err
    assert (runs / "notes.txt").read_text() == "mine" and (runs / "a" / "model.json").is_file()


def test_train_refuses_the_data_folder(small_split, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(small_split, data)
    code, _, err = _train(data, data, capsys)
    assert code == 1 and "holds the input" in err
    assert sorted(p.name for p in data.iterdir()) == ["dev.jsonl.gz", "test.jsonl.gz", "train.jsonl.gz"]


def test_train_refuses_a_prepared_folder_and_a_file(small_split, tmp_path, posts_file, capsys):
    assert _run(["data", "prepare", posts_file, "--out", tmp_path / "d"], capsys)[0] == 0
    code, _, err = _train(small_split, tmp_path / "d", capsys)
    assert code == 1 and "was made by `hashrec data prepare`" in err
    code, _, err = _train(small_split, posts_file, capsys)
    assert code == 1 and "is a file" in err and posts_file.stat().st_size > 0


def test_train_out_dot_is_refused_before_training(small_split, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, _, err = _run(["train", "--model", "acnn", "--data", small_split, "--out", "."], capsys)
    assert code == 1 and "is the current folder" in err
    assert "epoch" not in err and list(tmp_path.iterdir()) == []  # nothing trained, nothing left


@pytest.mark.parametrize("command", ["train", "prepare"])
def test_unwritable_out_is_an_error_before_work(small_split, posts_file, command, capsys):
    args = (
        ["data", "prepare", posts_file]
        if command == "prepare"
        else ["train", "--model", "popularity", "--data", small_split]
    )
    code, _, err = _run([*args, "--out", "/proc/nope/m"], capsys)
    assert code == 1 and "/proc/nope/m: cannot write there" in err


def test_rerun_replaces_its_own_model_and_removes_the_checkpoint(small_split, tmp_path, capsys):
    out = tmp_path / "m"
    assert _train(small_split, out, capsys)[0] == 0
    assert _train(small_split, out, capsys)[0] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # no m.ckpt/, no temporary left
    assert _train(small_split, tmp_path / "empty", capsys, "--keep-checkpoint")[0] == 0


def test_prepare_reruns_into_its_own_folder_and_refuses_others(posts_file, tmp_path, capsys):
    out = tmp_path / "d"
    assert _run(["data", "prepare", posts_file, "--out", out], capsys)[0] == 0
    assert json.loads((out / MARKER).read_text()) == {"kind": "data prepare"}
    assert _run(["data", "prepare", posts_file, "--out", out, "--seed", "1"], capsys)[0] == 0
    code, _, err = _run(["data", "prepare", posts_file, "--out", posts_file], capsys)
    assert code == 1 and "is a file" in err
    code, _, err = _run(["data", "prepare", posts_file, "--out", tmp_path], capsys)
    assert code == 1 and "holds the input" in err


def test_compare_resumes_its_own_folder_and_refuses_others(small_split, tmp_path, capsys):
    out = tmp_path / "cmp"
    args = ["compare", "--data", small_split, "--models", "popularity", "--out", out]
    assert _run(args, capsys)[0] == 0
    code, stdout, _ = _run([*args, "--reuse"], capsys)
    assert code == 0 and "reusing" in stdout
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("x")
    code, _, err = _run([*args[:-1], tmp_path / "mine"], capsys)
    assert code == 1 and "thesis.tex" in err and (tmp_path / "mine" / "thesis.tex").is_file()


def test_experiment_and_bench_refuse_a_folder_they_did_not_make(small_split, tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("x")
    code, _, err = _run(["experiment", "table1", "--data", small_split, "--out", tmp_path], capsys)
    assert code == 1 and "notes.txt" in err
    code, _, err = _run(
        ["bench", "--quick", "--data", small_split, "--en-data", small_split, "--out", tmp_path], capsys
    )
    assert code == 1 and "notes.txt" in err


def test_one_kind_does_not_take_another_kinds_folder(tmp_path):
    claim_output_dir(tmp_path / "s", "stream")
    assert check_output_dir(tmp_path / "s", "stream") == (tmp_path / "s").resolve()
    with pytest.raises(OutputError, match="was made by `hashrec stream`"):
        claim_output_dir(tmp_path / "s", "compare")
