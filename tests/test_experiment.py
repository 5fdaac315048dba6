"""`hashrec experiment`: runs each (row, seed) once, resumes, reports mean ± std, plots P/R/F1 at k."""

from __future__ import annotations

import json

import pytest

from hashrec import cli, experiment
from hashrec.errors import ConfigError


@pytest.fixture
def tiny_tables(monkeypatch):
    """Two small tables over real models; the second shares a run with the first (a default spelled out)."""
    tables = {
        "a": [("NB", "nb", {}), ("CNN", "cnn", {"windows": (1,)})],
        "b": [
            ("NB alpha default", "nb", {"alpha": experiment.model_class("nb").Config().alpha}),
            ("popularity", "popularity", {}),
        ],
    }
    monkeypatch.setattr(experiment, "TABLES", tables)
    return tables


def test_runs_each_seed_once_and_resumes(small_split, tmp_path, tiny_tables):
    out = tmp_path / "exp"
    common = dict(
        seeds=[0, 1],
        overrides={"epochs": 1, "dim": 16, "n_maps": 8, "hidden": 16, "embeddings": "random"},
        log=lambda _: None,
    )
    results = experiment.run(["a", "b"], small_split, out, **common)
    lines = (out / "results.jsonl").read_text().splitlines()
    # nb (deterministic) once, cnn twice (2 seeds), popularity once; table b's nb is table a's run
    assert sorted(json.loads(line)["name"] for line in lines) == ["cnn", "cnn", "nb", "popularity"]
    assert len(results["a"]) == 3 and len(results["b"]) == 2
    cnn = [r for r in results["a"] if r["name"] == "cnn"]
    assert {r["seed"] for r in cnn} == {0, 1} and all(r["params"]["epochs"] == 1 for r in cnn)
    assert "epochs" not in next(r for r in results["a"] if r["name"] == "nb")["params"]  # nets only
    md = (out / "a.md").read_text()
    assert "| CNN | 2 |" in md and " ± " in md and "| NB | 1 |" in md
    assert (out / "a.png").read_bytes()[:4] == b"\x89PNG" and (out / "b.csv").is_file()
    # rerunning trains nothing new
    experiment.run(["a", "b"], small_split, out, **common)
    assert (out / "results.jsonl").read_text().splitlines() == lines


def test_cli_rejects_unknown_tables_and_bad_records(small_split, tmp_path, tiny_tables, capsys):
    with pytest.raises(ConfigError, match="unknown table"):
        experiment.run(["nope"], small_split, tmp_path)
    (tmp_path / ".hashrec").write_text('{"kind": "experiment"}')  # the folder an earlier experiment made
    (tmp_path / "results.jsonl").write_text('{"key": "x"}\nnot json\n')
    assert cli.main(["experiment", "a", "--data", str(small_split), "--out", str(tmp_path), "--seeds", "0"]) == 1
    assert "results.jsonl, line 2" in capsys.readouterr().err
