"""Model files: never unpickled; truncated, foreign-version and planted-pickle directories refused."""

from __future__ import annotations

import json
import pickle

import pytest

from hashrec.errors import ModelFileError
from hashrec.models import create
from hashrec.models.base import Recommender


@pytest.fixture()
def saved(tmp_path, weibo_sample):
    path = tmp_path / "m"
    create("popularity").fit(weibo_sample["train"][:500]).save(path)
    return path


def test_truncated_weights_refused(saved):
    w = saved / "weights.safetensors"
    w.write_bytes(w.read_bytes()[:-10])
    with pytest.raises(ModelFileError, match="checksum"):
        Recommender.load(saved)


def test_other_format_version_refused(saved):
    meta = json.loads((saved / "model.json").read_text())
    meta["format_version"] = 99
    (saved / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelFileError, match="format version 99"):
        Recommender.load(saved)


class Boom:
    def __reduce__(self):
        return (exec, ("raise SystemExit('pickle executed')",))


def test_planted_pickle_refused_and_never_run(saved):
    (saved / "model.pkl").write_bytes(pickle.dumps(Boom()))
    with pytest.raises(ModelFileError, match="unexpected files"):
        Recommender.load(saved)


def test_corrupted_json_refused(saved):
    (saved / "model.json").write_text("{not json")
    with pytest.raises(ModelFileError, match="corrupted"):
        Recommender.load(saved)


def test_save_replaces_atomically_and_leaves_no_temp(saved, weibo_sample):
    create("popularity").fit(weibo_sample["train"][:100]).save(saved)
    assert sorted(p.name for p in saved.parent.iterdir()) == ["m"]
    assert Recommender.load(saved).trained_on_["n_train"] == 100


def test_atomic_files_get_the_mode_a_plain_write_would(saved, tmp_path):
    import os

    from hashrec.store import _umask, write_json

    write_json(tmp_path / "r.json", {"a": 1})
    assert os.stat(tmp_path / "r.json").st_mode & 0o777 == 0o666 & ~_umask()
    assert os.stat(saved).st_mode & 0o777 == 0o777 & ~_umask()
    assert os.stat(saved / "weights.safetensors").st_mode & 0o777 == 0o666 & ~_umask()  # safetensors makes 0600
