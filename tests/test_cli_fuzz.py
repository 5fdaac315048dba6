"""Random command lines, in the manner of the server's schemathesis test: whatever the arguments
(numbers out of range, empty strings, files where folders go, missing paths, unicode), every
subcommand exits 0, 1 or 2 with a message, never with a traceback.

Paths that would start long work (a real split directory for experiment, bench, a real model for
serve) are left out of those commands' pools: they fail, or finish, within a second.
"""

from __future__ import annotations

import argparse
import io
import json
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hashrec.cli import build_parser, main
from hashrec.data import Post, write_jsonl

NUMBERS = ["0", "-1", "1", "3", "0.5", "-0.5", "nan", "inf", "1e9", "1000000000", "99999999999999999999"]
ODD = ["", " ", "-", "武汉😷", "\x00", "a" * 300, "../..", "/proc/nope", "--", "=", "k=", "=1", "x=(1,"]


@pytest.fixture(scope="module")
def paths(tmp_path_factory, small_split) -> dict[str, str]:
    """Things a path argument may name: a tiny split, a model, a file, an empty folder, a missing path."""
    root = tmp_path_factory.mktemp("fuzz")
    split = root / "split"
    for part, n in (("train", 40), ("dev", 10), ("test", 10)):
        write_jsonl(split / f"{part}.jsonl", [Post(f"post {part} {i} 武汉", (f"t{i % 3}",)) for i in range(n)])
    (root / "posts.jsonl").write_text("\n".join(json.dumps({"text": f"p {i} #t{i % 3}"}) for i in range(30)))
    (root / "posts.csv").write_text("text;hashtags\n" + "".join(f"p {i};t{i % 3}\n" for i in range(30)))
    (root / "empty").mkdir()
    (root / "preset.json").write_text('{"alpha": 0.5}')
    assert main(["train", "--model", "popularity", "--data", str(split), "--out", str(root / "model")]) == 0
    return {
        name: str(root / name)
        for name in ("split", "model", "posts.jsonl", "posts.csv", "empty", "preset.json", "missing", "new/out")
    }


def _values(paths: dict[str, str], light: bool) -> st.SearchStrategy[str]:
    """Argument values; `light` commands also get the real split and model."""
    usable = {k: v for k, v in paths.items() if light or k not in ("split", "model")}
    return st.sampled_from(NUMBERS + ODD + list(usable.values()) + ["popularity", "nb", "weibo-covid19"])


HEAVY = {("experiment",), ("bench",), ("serve",)}  # a real split or model starts minutes of work (or a server)


def _parser(command: tuple[str, ...]) -> argparse.ArgumentParser:
    parser = build_parser()
    for word in command:
        parser = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[word]
    return parser


COMMANDS = [
    ("data", "prepare"),
    ("data", "stats"),
    ("train",),
    ("evaluate",),
    ("recommend",),
    ("compare",),
    ("experiment",),
    ("bench",),
    ("serve",),
]


@st.composite
def argv(draw, command: tuple[str, ...], paths: dict[str, str]) -> list[str]:
    """Each option of the command's parser, with a value from the pool or from its choices; required ones
    mostly present, so that most lines get past argparse; paths to the real benchmarks never."""
    values = _values(paths, light=command not in HEAVY)
    args = list(command)
    for action in _parser(command)._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        named = bool(action.option_strings)
        always = command in HEAVY and action.dest in ("data", "en_data", "model")  # defaults: the real benchmarks
        wanted = action.required or not named
        if not always and not draw(st.integers(0, 9) if wanted else st.booleans()):
            continue
        pool = st.one_of(st.sampled_from(list(action.choices)), values) if action.choices else values
        many = action.nargs in ("+", "*")
        words = [] if action.nargs == 0 else draw(st.lists(pool, min_size=0 if many else 1, max_size=2 if many else 1))
        args += ([draw(st.sampled_from(action.option_strings))] if named else []) + words
    if command == ("compare",) and "--models" not in args:
        args += ["--models", "popularity"]  # all models by default: minutes, not a second
    return args


@pytest.mark.parametrize("command", list(COMMANDS), ids="-".join)
def test_random_arguments_never_give_a_traceback(command, paths, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # relative names land here
    monkeypatch.setattr(sys, "stdin", io.StringIO("武汉加油\n\nstay safe\n"))

    @given(args=argv(command, paths))
    @settings(max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def run(args: list[str]) -> None:
        try:
            code = main(args)
        except SystemExit as e:  # argparse: 2 on a usage error, 0 for --help
            code = e.code
        err = capsys.readouterr().err
        assert code in (0, 1, 2), (args, code, err)
        assert "Traceback" not in err, (args, err)
        if code:
            assert "error" in err, (args, err)

    run()
