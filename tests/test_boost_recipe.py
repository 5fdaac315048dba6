"""`hashrec train --model boost --data DIR` without --base: the recipe's parts trained (or reused) first.

On 2,000 real Weibo posts with every part shrunk (one acnn epoch, a few Gibbs sweeps), so that
the test checks the path, not the figure (docs/results/boost.md has the full-scale runs).
"""

from __future__ import annotations

import json

import pytest
from conftest import TINY_ACNN

from hashrec import api
from hashrec.cli import main
from hashrec.errors import ConfigError
from hashrec.models.base import Recommender
from hashrec.models.boost import RECIPE_BASE, RECIPE_SCORERS

SMALL = {
    **{f"acnn.{k}": v for k, v in TINY_ACNN.items()},
    "fasttext.epoch": 2,
    "fasttext.bucket": 1000,
    "topicwa.iterations": 4,
    "topicwa.burn_in": 2,
    "ttm.iterations": 4,
    "ttm.burn_in": 2,
    "n_estimators": 20,
    "early_stopping": 5,
    "rep_dims": 4,
}
PARTS = [RECIPE_BASE[0], *(name for name, _ in RECIPE_SCORERS)]


@pytest.mark.slow  # eight small models and a booster: about a minute on the shared machine
def test_one_command_trains_the_parts_then_reuses_them(small_split, tmp_path):
    lines: list[str] = []
    out = tmp_path / "boost"
    boost = api.train_boost(small_split, out, params=SMALL, log=lines.append)
    assert [line.split()[1] for line in lines if "training into" in line] == [*(p + ":" for p in PARTS), "boost:"]
    assert boost.config.base == str(out) + ".parts/acnn" and boost.config.from_scorers == 5
    assert [Recommender.load(s).name for s in boost.config.scorers] == PARTS[1:]
    assert json.loads((tmp_path / "boost.parts" / ".hashrec").read_text()) == {"kind": "train --model boost"}
    assert Recommender.load(out).suggest(["武汉加油"], k=3)[0][0].confidence is not None

    lines.clear()  # again, with a different booster seed: every part is reused
    api.train_boost(small_split, out, params={**SMALL, "seed": 1}, log=lines.append)
    assert sum("reusing" in line for line in lines) == len(PARTS)
    assert sum("training into" in line for line in lines) == 1

    lines.clear()  # another acnn setting: the acnn and the hknn built on its h are retrained, the rest reused
    api.train_boost(small_split, out, params={**SMALL, "acnn.seed": 1}, log=lines.append)
    assert [line.split()[1] for line in lines if "training into" in line] == ["acnn:", "hknn:", "boost:"]


def test_parts_must_be_named_and_their_folder_ours(small_split, tmp_path, capsys):
    with pytest.raises(ConfigError, match="not a part of boost's recipe"):
        api.train_boost(small_split, tmp_path / "b", params={"lda.topics": 5})
    with pytest.raises(ConfigError, match="--scorer without --base"):
        api.train("boost", small_split, tmp_path / "b", params={"scorers": ("runs/knn",)})
    with pytest.raises(ConfigError, match="give an output folder"):
        api.train("boost", small_split)
    (tmp_path / "mine.parts").mkdir()
    (tmp_path / "mine.parts" / "notes.txt").write_text("my notes")
    assert main(["train", "--model", "boost", "--data", str(small_split), "--out", str(tmp_path / "mine")]) == 1
    assert "mine.parts: holds files hashrec did not write (notes.txt)" in capsys.readouterr().err
    assert (tmp_path / "mine.parts" / "notes.txt").read_text() == "my notes"
