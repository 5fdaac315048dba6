"""The Python functions behind each command: `hashrec X` on the command line is `hashrec.api.X` here.

>>> from hashrec import api                                            # doctest: +SKIP
>>> model = api.train("nb", "data/sample/weibo", out="runs/nb")      # doctest: +SKIP
>>> api.recommend(model, ["钟南山说疫情可控"], k=3)                      # doctest: +SKIP
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Sequence

from hashrec.data import (  # noqa: F401  (re-exported)
    Post,
    load_split,
    prepare,
    prepare_stream,
    read_posts,
    read_user_file,
    split_file,
)
from hashrec.errors import DataError
from hashrec.metrics import Scores, report
from hashrec.models import create
from hashrec.models.base import Recommender, check_k, check_texts
from hashrec.store import MARKER, MODEL, check_output_dir, claim_output_dir


def load(path: str | Path) -> Recommender:
    """A saved model directory, of any registered kind."""
    return Recommender.load(path)


def _model(model: Recommender | str | Path) -> Recommender:
    return model if isinstance(model, Recommender) else load(model)


def train(model: str, data: str | Path, out: str | Path | None = None, *,
          params: dict[str, Any] | None = None, resume: bool = False,
          keep_checkpoint: bool = False) -> Recommender:
    """Fit recommender `model` on the split directory `data` (train; dev for selection), score dev, save.

    `params` override the model's defaults: the fields of its config dataclass (e.g.
    `hashrec.models.acnn.ACNNConfig`); an unknown name is refused with the list of valid ones.
    With `out` (checked before any work: an absent path, an empty folder or an earlier model,
    never the data or a model this one reads), the model is saved there; neural models also keep
    per-epoch checkpoints beside it (`OUT.ckpt/`), removed on success unless `keep_checkpoint`,
    and `resume=True` continues from the last one.
    """
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


def evaluate(model: Recommender | str | Path, data: str | Path | Sequence[Post],
             ks: Sequence[int] = (1, 2, 3, 4, 5)) -> dict[int, Scores]:
    """Eq. 11 scores of a model on a split file, a split directory (its test split) or posts."""
    for k in ks:
        check_k(k)
    posts = read_posts(data) if isinstance(data, (str, Path)) else list(data)
    return _model(model).evaluate(posts, ks)


def evaluate_report(model: Recommender | str | Path, data: str | Path | Sequence[Post],
                    ks: Sequence[int] = (1, 2, 3, 4, 5)) -> dict[str, Any]:
    """Eq. 11 (micro) and the per-post averaged variant, as `hashrec evaluate --json` prints them."""
    for k in ks:
        check_k(k)
    posts = read_posts(data) if isinstance(data, (str, Path)) else list(data)
    return report(*_model(model).gold_and_ranked(posts, max(ks)), ks)


def recommend(model: Recommender | str | Path, texts: str | Sequence[str], k: int = 5,
              explain: bool = False, *, at: Any = None, user: Any = None) -> list[dict[str, Any]]:
    """Per text: `{"text", "hashtags": [{"hashtag", "score"}], "triggers": [{"word", "weight"}]?}`.

    `at` (a time, or one per text) and `user` (an author id, or one per text) as in `Recommender.recommend`.
    """
    rec, texts = _model(model), check_texts(texts)
    ranked = rec.recommend(texts, k, at=at, user=user)
    out = [{"text": t, "hashtags": [{"hashtag": h, "score": s} for h, s in r]} for t, r in zip(texts, ranked)]
    if explain:
        for item, triggers in zip(out, rec.explain(texts)):
            item["triggers"] = [{"word": w, "weight": wt} for w, wt in triggers]
    return out


def update(model: Recommender | str | Path, posts: str | Path | Sequence[Post], out: str | Path | None = None,
           **read_options: Any) -> Recommender:
    """Learn from new posts (a list, or a file any `hashrec data prepare` reads, in the file's order)
    and, with `out`, save the model there atomically (`out` may be the model's own directory).

    `read_options` (text_field, hashtags_field, time_field, user_field, style) go to the file reader.
    """
    if out is not None:  # before the work: a bad --out costs nothing
        check_output_dir(out, MODEL, inputs=[posts] if isinstance(posts, (str, Path)) else [])
    rec = _model(model)
    items = list(read_user_file(posts, **read_options)) if isinstance(posts, (str, Path)) else list(posts)
    if not any(p.hashtags for p in items):
        raise DataError(f"{posts if isinstance(posts, (str, Path)) else 'posts'}: no post with a hashtag; "
                        "nothing to learn (check the hashtags field or the hashtag style)")
    rec.update(items)
    if out is not None:
        rec.save(out)
    return rec


def stream(model: str | Path | None, data: str | Path, out: str | Path, *, chunk: int = 100,
           params: dict[str, Any] | None = None, baseline: str | None = None, score: str = "test",
           log: Any = None) -> dict[str, Any]:
    """The prequential run of `hashrec stream` (hashrec.stream.run): OUT/report.json, predictions, plot."""
    from hashrec.stream import run

    return run(model, data, out, chunk=chunk, params=params, baseline=baseline, score=score,
               log=log or (lambda line: None))


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
