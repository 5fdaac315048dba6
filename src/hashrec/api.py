"""The Python functions behind each command: `hashrec X` on the command line is `hashrec.api.X` here.

>>> from hashrec import api                                            # doctest: +SKIP
>>> model = api.train("nb", "data/sample/weibo", out="runs/nb")      # doctest: +SKIP
>>> api.recommend(model, ["钟南山说疫情可控"], k=3)                      # doctest: +SKIP
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from hashrec.data import (  # noqa: F401  (re-exported)
    Post,
    load_split,
    prepare,
    prepare_stream,
    read_posts,
    read_user_file,
    split_file,
)
from hashrec.errors import ConfigError, DataError
from hashrec.metrics import Scores, report
from hashrec.models import create
from hashrec.models.base import Recommender, check_k, check_texts, fingerprint
from hashrec.store import MARKER, MODEL, MODEL_JSON, check_output_dir, claim_output_dir

Log = Callable[[str], None]


def load(path: str | Path) -> Recommender:
    """A saved model directory, of any registered kind."""
    return Recommender.load(path)


def _model(model: Recommender | str | Path) -> Recommender:
    return model if isinstance(model, Recommender) else load(model)


def train(
    model: str,
    data: str | Path,
    out: str | Path | None = None,
    *,
    params: dict[str, Any] | None = None,
    resume: bool = False,
    keep_checkpoint: bool = False,
) -> Recommender:
    """Fit recommender `model` on the split directory `data` (train; dev for selection), score dev, save.

    `params` override the model's defaults: the fields of its config dataclass (e.g.
    `hashrec.models.acnn.ACNNConfig`); an unknown name is refused with the list of valid ones.
    With `out` (checked before any work: an absent path, an empty folder or an earlier model,
    never the data or a model this one reads), the model is saved there; neural models also keep
    per-epoch checkpoints beside it (`OUT.ckpt/`), removed on success unless `keep_checkpoint`,
    and `resume=True` continues from the last one. `boost` without a `base` trains its recipe's
    parts first (`train_boost`).
    """
    if model == "boost" and not (params or {}).get("base"):
        return train_boost(data, out, params=params)
    rec = create(model, **(params or {}))
    checkpoint = None
    if out is not None:
        out = check_output_dir(out, MODEL, inputs=[data, *_model_inputs(params or {})])
        checkpoint = claim_output_dir(out.with_name(out.name + ".ckpt"), "train checkpoint")
    train_posts = load_split(data, "train")
    try:
        dev_posts: list[Post] | None = load_split(data, "dev")
    except DataError:
        dev_posts = None
    rec.trained_on_ = {"data": str(data)}
    rec.checkpoint_dir = checkpoint
    rec.resume = resume
    try:
        rec.fit(train_posts, dev_posts)
    finally:
        if checkpoint is not None and _only_marker(checkpoint):  # a model that keeps no checkpoints
            shutil.rmtree(checkpoint, ignore_errors=True)
    if dev_posts:
        rec.metrics_ = {"dev": {f"F1@{k}": s.f1 for k, s in rec.evaluate(dev_posts).items()}}
    if out is not None and _is_main_process():
        rec.save(out)
        if not keep_checkpoint:
            shutil.rmtree(checkpoint, ignore_errors=True)
    return rec


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def train_boost(
    data: str | Path, out: str | Path | None, *, params: dict[str, Any] | None = None, log: Log = _stderr
) -> Recommender:
    """Boost's best recipe in one call: its acnn base and scorer models first, then the booster.

    The parts (`hashrec.models.boost.RECIPE_BASE`, `RECIPE_SCORERS`) are trained on `data` into
    `OUT.parts/NAME`, a folder this makes and marks; a part already there is reused when it was
    trained on the same training posts (`trained_on_["train_sha256"]`) with the same settings.
    `params`: boost's own (`from_scorers=5` by default), and `PART.KEY` for a part's, e.g.
    `{"acnn.epochs": 1}`. A line per stage goes to `log`.
    """
    from hashrec.models.boost import RECIPE_BASE, RECIPE_BOOST, RECIPE_SCORERS

    if out is None:
        raise ConfigError(
            "boost without a base trains its base and scorers into OUT.parts/ first: give an "
            "output folder (--out), or a trained --base"
        )
    stages = [RECIPE_BASE, *RECIPE_SCORERS]
    own, parts_params = _part_params(params or {}, [name for name, _ in stages])
    if own.get("scorers"):
        raise ConfigError(
            "boost: --scorer without --base; give the base they go with (--base DIR), or neither "
            "to train the recipe's base and scorers"
        )
    parts = Path(str(out) + ".parts")
    paths = {name: parts / name for name, _ in stages}
    settings = {name: {**defaults, **parts_params[name]} for name, defaults in stages}
    settings["hknn"]["base"] = str(paths[RECIPE_BASE[0]])  # its memory is the base network's h
    boost_params = {
        **RECIPE_BOOST,
        **own,
        "base": str(paths[RECIPE_BASE[0]]),
        "scorers": tuple(str(paths[name]) for name, _ in RECIPE_SCORERS),
    }
    for name, wanted in [*settings.items(), ("boost", boost_params)]:
        create(name, **wanted)  # a bad option is refused now, not after an hour of training
    check_output_dir(out, MODEL, inputs=[data])  # a bad --out fails now, not after the parts
    claim_output_dir(parts, "train --model boost", inputs=[data])  # made and marked; someone else's is refused
    digest = fingerprint([p.text for p in load_split(data, "train")])
    retrained_base, n = False, len(settings) + 1
    for i, (name, wanted) in enumerate(settings.items(), 1):
        path = paths[name]
        # a new base means a new hknn: its memory is the base's h
        if not (name == "hknn" and retrained_base) and _same_part(path, name, wanted, digest):
            log(f"[{i}/{n}] {name}: reusing {path} (same training posts and settings)")
            continue
        log(f"[{i}/{n}] {name}: training into {path}")
        start = time.perf_counter()
        part = train(name, data, path, params=wanted)
        retrained_base |= name == RECIPE_BASE[0]
        dev = part.metrics_.get("dev", {})
        log(
            f"[{i}/{n}] {name}: done in {time.perf_counter() - start:.0f} s"
            + (f", dev F1@1 {dev['F1@1']:.4f}" if dev else "")
        )
    log(f"[{n}/{n}] boost: training into {out}")
    start = time.perf_counter()
    rec = train("boost", data, out, params=boost_params)
    log(f"[{n}/{n}] boost: done in {time.perf_counter() - start:.0f} s")
    return rec


def _part_params(params: dict[str, Any], parts: list[str]) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Boost's own params, and `PART.KEY` ones per part: {"acnn.epochs": 1} -> {"acnn": {"epochs": 1}}."""
    own: dict[str, Any] = {}
    per: dict[str, dict[str, Any]] = {name: {} for name in parts}
    for key, value in params.items():
        name, dot, option = key.partition(".")
        if not dot:
            own[key] = value
        elif name in per:
            per[name][option] = value
        else:
            raise ConfigError(
                f"--set {key}: {name} is not a part of boost's recipe; parts: {', '.join(parts)} "
                "(e.g. --set acnn.epochs=2), or a boost option without a dot"
            )
    return own, per


def _same_part(path: Path, name: str, params: dict[str, Any], digest: str) -> bool:
    """Whether the model at `path` is `name` with `params`, trained on the posts whose fingerprint is `digest`."""
    try:
        meta = json.loads((path / MODEL_JSON).read_text(encoding="utf-8"))
        wanted = json.loads(json.dumps(create(name, **params).get_params()))  # tuples as JSON lists
        return meta["model"] == name and meta["config"] == wanted and meta["trained_on"].get("train_sha256") == digest
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def _model_inputs(params: dict[str, Any]) -> list[str]:
    """The saved models a model reads by path (boost's and hknn's base, boost's scorers): never an --out."""
    paths = [params.get("base"), params.get("scorers")]
    return [str(p) for value in paths if value for p in ((value,) if isinstance(value, (str, Path)) else value)]


def _only_marker(folder: Path) -> bool:
    return [p.name for p in folder.iterdir()] == [MARKER] if folder.is_dir() else False


def _is_main_process() -> bool:
    """Under torchrun only rank 0 writes the model; torch is imported only if a run is distributed."""
    import os

    if int(os.environ.get("WORLD_SIZE", "1")) == 1:
        return True
    from hashrec.distributed import is_main

    return is_main()


def evaluate(
    model: Recommender | str | Path, data: str | Path | Sequence[Post], ks: Sequence[int] = (1, 2, 3, 4, 5)
) -> dict[int, Scores]:
    """Eq. 11 scores of a model on a split file, a split directory (its test split) or posts."""
    for k in ks:
        check_k(k)
    posts = read_posts(data) if isinstance(data, (str, Path)) else list(data)
    return _model(model).evaluate(posts, ks)


def evaluate_report(
    model: Recommender | str | Path, data: str | Path | Sequence[Post], ks: Sequence[int] = (1, 2, 3, 4, 5)
) -> dict[str, Any]:
    """Eq. 11 (micro) and the per-post averaged variant, as `hashrec evaluate --json` prints them."""
    for k in ks:
        check_k(k)
    posts = read_posts(data) if isinstance(data, (str, Path)) else list(data)
    return report(*_model(model).gold_and_ranked(posts, max(ks)), ks)


def recommend(
    model: Recommender | str | Path,
    texts: str | Sequence[str],
    k: int = 5,
    explain: bool = False,
    min_confidence: float | None = None,
    *,
    at: Any = None,
    user: Any = None,
) -> list[dict[str, Any]]:
    """Per text, the one answer shape of the CLI (`--json`), the HTTP API and Python:

    `{"text", "hashtags": [{"hashtag", "score", "confidence"}], "triggers": [{"word", "weight"}]?}`.
    `score` is the model's own (higher is better, its scale depends on the model); `confidence` the
    calibrated probability that the author used the hashtag, or None for a model without calibration
    (`Recommender.suggest`). With `min_confidence`, hashtags below it are left out: the list may be
    empty. `triggers` (with `explain`, attention models only): the words the attention kept. `at` (a
    time, or one per text) and `user` (an author id, or one per text) as in `Recommender.recommend`.
    """
    rec, texts = _model(model), check_texts(texts)
    suggested = rec.suggest(texts, k, at=at, user=user, min_confidence=min_confidence)
    out = [{"text": t, "hashtags": [s._asdict() for s in row]} for t, row in zip(texts, suggested)]
    if explain:
        for item, triggers in zip(out, rec.explain(texts)):
            item["triggers"] = [{"word": w, "weight": wt} for w, wt in triggers]
    return out


def update(
    model: Recommender | str | Path,
    posts: str | Path | Sequence[Post],
    out: str | Path | None = None,
    **read_options: Any,
) -> Recommender:
    """Learn from new posts (a list, or a file any `hashrec data prepare` reads, in the file's order)
    and, with `out`, save the model there atomically (`out` may be the model's own directory).

    `read_options` (text_field, hashtags_field, time_field, user_field, style) go to the file reader.
    """
    if out is not None:  # before the work: a bad --out costs nothing
        check_output_dir(out, MODEL, inputs=[posts] if isinstance(posts, (str, Path)) else [])
    rec = _model(model)
    items = list(read_user_file(posts, **read_options)) if isinstance(posts, (str, Path)) else list(posts)
    if not any(p.hashtags for p in items):
        raise DataError(
            f"{posts if isinstance(posts, (str, Path)) else 'posts'}: no post with a hashtag; "
            "nothing to learn (check the hashtags field or the hashtag style)"
        )
    rec.update(items)
    if out is not None:
        rec.save(out)
    return rec


def stream(
    model: str | Path | None,
    data: str | Path,
    out: str | Path,
    *,
    chunk: int = 100,
    params: dict[str, Any] | None = None,
    baseline: str | None = None,
    score: str = "test",
    log: Any = None,
) -> dict[str, Any]:
    """The prequential run of `hashrec stream` (hashrec.stream.run): OUT/report.json, predictions, plot."""
    from hashrec.stream import run

    return run(
        model, data, out, chunk=chunk, params=params, baseline=baseline, score=score, log=log or (lambda line: None)
    )


def update_from_log(model: Recommender | str | Path, state: str | Path, out: str | Path) -> tuple[Recommender, int]:
    """Fold the live server's post log (`--state DIR`) into the model and save it to `out`; the posts learned.

    The saved model records the last log id it learned (`trained_on_["log_position"]`): a server
    started on it replays only the posts logged after. This is how an operator compacts the log.
    """
    from hashrec.postlog import LOG_FILE, PostLog, learn_log

    check_output_dir(out, MODEL, inputs=[state])  # before the work: a bad --out costs nothing
    if not (Path(state) / LOG_FILE).is_file():
        raise DataError(f"{state}: no post log ({LOG_FILE}) there; name the --state directory the server ran with")
    rec, log = _model(model), PostLog(state)
    try:
        n = learn_log(rec, log)
    finally:
        log.close()
    rec.save(out)
    return rec, n
