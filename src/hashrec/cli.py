"""The command line, a thin shell over hashrec.api (fastText's verbs: prepare, train, evaluate, recommend).

Every command prints a clear message and exits 1 on bad input; no traceback reaches the user.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from hashrec import __version__, api
from hashrec.bench import bench, format_rows
from hashrec.config import parse_overrides, read_preset
from hashrec.data import Tally, format_stats, read_user_file, split_stats
from hashrec.errors import ConfigError, HashrecError
from hashrec.metrics import format_table
from hashrec.models import MODELS, STACKED
from hashrec.models.base import check_k
from hashrec.stream import DEFAULT_MODEL as DEFAULT_STREAM_MODEL

Command = Callable[[argparse.Namespace], None]


def _cmd_prepare(a: argparse.Namespace) -> None:
    if a.stream:
        counts = api.prepare_stream(
            a.dataset,
            a.out,
            source=a.source,
            dev_from=a.dev_from,
            test_from=a.test_from,
            **({} if a.source else _reading_options(a)),
        )
        print(
            f"wrote {a.out}: "
            + ", ".join(f"{k} {v:,}" for k, v in counts.items() if k != "no_time")
            + (f"; dropped {counts['no_time']:,} posts without a time" if counts.get("no_time") else "")
        )
        return
    if a.dev_from or a.test_from:
        raise HashrecError("--dev-from and --test-from split a stream: add --stream")
    tally = Tally()
    counts = api.prepare(
        a.dataset,
        a.out,
        source=a.source,
        train_size=a.train_size,
        heldout=a.heldout,
        fraction=a.fraction,
        seed=a.seed,
        by_time=a.by_time,
        tally=tally,
        **({} if a.source else _reading_options(a)),
    )
    print(tally.summary())
    print(f"wrote {a.out}: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))


def _cmd_train(a: argparse.Namespace) -> None:
    params = {**(read_preset(a.config) if a.config else {}), **parse_overrides(a.set)}
    if a.base:  # several: hknn's views (boost's config refuses more than one)
        params["base"] = str(a.base[0]) if len(a.base) == 1 else tuple(str(b) for b in a.base)
    if a.scorer:
        params["scorers"] = tuple(str(s) for s in a.scorer)
    model = api.train(a.model, a.data, a.out, params=params, resume=a.resume, keep_checkpoint=a.keep_checkpoint)
    dev = model.metrics_.get("dev", {})
    print(f"saved {a.model} to {a.out}" + (f"; dev F1@1 {dev['F1@1']:.4f}" if dev else ""))


MAX_EVAL_K = 100  # evaluate prints a row per k; beyond this the table says nothing more


def _cmd_evaluate(a: argparse.Namespace) -> None:
    if check_k(a.k) > MAX_EVAL_K:
        raise ConfigError(f"-k {a.k}: evaluate reports k = 1..K, one row each; K at most {MAX_EVAL_K}")
    if a.json:
        print(json.dumps(api.evaluate_report(a.model, a.data, ks=range(1, a.k + 1)), indent=1))
    else:
        print(format_table(api.evaluate(a.model, a.data, ks=range(1, a.k + 1))))


def _read_texts(a: argparse.Namespace) -> Iterator[str]:
    """Posts from the arguments, standard input (one a line) or a file in any format data prepare reads."""
    if str(a.input) == "-":
        yield from (line.rstrip("\r\n") for line in sys.stdin)
    elif a.input:
        yield from (post.text for post in read_user_file(a.input))
    elif not a.text:
        raise HashrecError("give posts as arguments or with --input FILE (- for standard input)")
    else:
        yield from a.text


def _chunks(texts: Iterator[str], size: int) -> Iterator[list[str]]:
    """Lists of up to `size` texts; a bad input line first yields the posts read before it, then raises."""
    chunk: list[str] = []
    try:
        for text in texts:
            chunk.append(text)
            if len(chunk) == size:
                yield chunk
                chunk = []
    except HashrecError:
        if chunk:
            yield chunk
        raise
    if chunk:
        yield chunk


def _cmd_recommend(a: argparse.Namespace) -> None:
    """Streams: posts are answered in chunks, in input order, so a large file needs no memory."""
    model = api.load(a.model)
    for chunk in _chunks(_read_texts(a), 256):
        for item in api.recommend(
            model, chunk, k=a.k, explain=a.explain, min_confidence=a.min_confidence, at=a.at, user=a.user
        ):
            if a.json:  # api.recommend's shape, the HTTP API's too
                print(json.dumps(item, ensure_ascii=False), flush=True)
                continue
            line = "  ".join(f"#{h['hashtag']} ({_shown(h)})" for h in item["hashtags"]) or "(no hashtag fits)"
            if a.explain:
                line += "\n  triggers: " + " ".join(f"{t['word']}({t['weight']:.2f})" for t in item["triggers"])
            print(line, flush=True)


def _shown(suggestion: dict) -> str:
    """A probability where the model is calibrated ("62%"), else the model's own score."""
    confidence = suggestion["confidence"]
    return f"{confidence:.0%}" if confidence is not None else f"score {suggestion['score']:.3g}"


def _cmd_stream(a: argparse.Namespace) -> None:
    from hashrec.stream import format_summary

    result = api.stream(
        a.model,
        a.data,
        a.out,
        chunk=a.chunk,
        params=parse_overrides(a.set),
        baseline=a.baseline,
        score=a.score,
        log=lambda line: print(line, flush=True),
    )
    print(format_summary(result))
    print(f"wrote {a.out}/report.json, predictions.jsonl, per_day.png")


def _cmd_update(a: argparse.Namespace) -> None:
    if a.state:
        rec, n = api.update_from_log(a.model, a.state, a.out)
        print(f"wrote {a.out}: learned {n:,} logged posts, up to log id {rec.trained_on_.get('log_position', 0)}")
        return
    model = api.update(a.model, a.data, a.out, **_reading_options(a))
    print(f"learned {model.trained_on_.get('n_updates', 0):,} posts in all since fit; saved {a.out}")


def _cmd_stats(a: argparse.Namespace) -> None:
    stats = split_stats(a.data)
    print(json.dumps(stats, ensure_ascii=False, indent=1) if a.json else format_stats(stats))


def _cmd_serve(a: argparse.Namespace) -> None:
    from hashrec.server import serve  # fastapi and uvicorn load only for this command
    from hashrec.server.live import read_token

    token = read_token(a.ingest_token_file)
    if token is not None and a.state is None:
        raise HashrecError("an ingest token needs --state DIR: the durable log where POST /posts writes")
    serve(
        a.model,
        host=a.host,
        port=a.port,
        workers=a.workers,
        access_log=not a.no_access_log,
        max_batch=a.max_batch,
        max_text_chars=a.max_text_chars,
        gather_ms=a.gather_ms,
        state=a.state,
        ingest_token=token,
        window_days=a.window_days,
        synchronous=a.synchronous,
        min_confidence=a.min_confidence,
    )


def _cmd_bench(a: argparse.Namespace) -> None:
    rows = bench(
        a.data,
        a.en_data,
        quick=a.quick,
        model=a.model,
        params=parse_overrides(a.set),
        threads=a.threads,
        train_budget=a.train_budget,
        out=a.out,
    )
    print(format_rows(rows))
    if a.out:
        print(f"wrote {a.out}/bench.json and {a.out}/bench.md")


def _cmd_compare(a: argparse.Namespace) -> None:
    from hashrec.compare import compare

    models = (
        [m.strip() for m in a.models.split(",") if m.strip()] if a.models else [m for m in MODELS if m not in STACKED]
    )
    compare(
        a.data, models, a.out, overrides=parse_overrides(a.set), reuse=a.reuse, log=lambda line: print(line, flush=True)
    )
    print(f"wrote {a.out}/table.md, scores.csv, f1_at_k.png")


def _cmd_experiment(a: argparse.Namespace) -> None:
    from hashrec.experiment import run

    if a.threads:
        import torch

        torch.set_num_threads(a.threads)
    run(
        a.tables,
        a.data,
        a.out,
        seeds=a.seeds,
        overrides=parse_overrides(a.set),
        n_train=a.n_train,
        n_dev=a.n_dev,
        save_models=a.save_models,
        log=lambda line: print(line, flush=True),
    )
    print(f"wrote {', '.join(f'{a.out}/{t}.md' for t in a.tables)} (and .csv, .png)")


def _reading_options(a: argparse.Namespace) -> dict[str, str]:
    """The options of `_add_reading_options`, as hashrec.data.read_user_file takes them."""
    return {
        "style": a.hashtag_style,
        "text_field": a.text_field,
        "hashtags_field": a.hashtags_field,
        "time_field": a.time_field,
        "user_field": a.user_field,
    }


def _add_reading_options(p: argparse.ArgumentParser, prefix: str = "") -> None:
    """How a user's own file is read: the hashtag style and the fields."""
    p.add_argument(
        "--hashtag-style",
        choices=["auto", "weibo", "twitter"],
        default="auto",
        help=prefix + "#topic# (weibo) or #tag (twitter); auto picks weibo for Chinese text",
    )
    p.add_argument("--text-field", default="text", help=prefix + "the text field or column")
    p.add_argument(
        "--hashtags-field",
        default="hashtags",
        help=prefix + "the hashtags field (a list in JSONL; in CSV tags separated by ';' or '|'); "
        "absent or empty = extract from the text",
    )
    p.add_argument(
        "--time-field",
        default="time",
        help=prefix + "when each post was made (ISO 8601 or epoch seconds); absent = undated",
    )
    p.add_argument("--user-field", default="user", help=prefix + "each post's author id; absent = unknown")


def _path(value: str) -> Path:
    """A path argument; a NUL byte (possible only when main() is called from Python) is a usage error."""
    if "\x00" in value:
        raise argparse.ArgumentTypeError(f"{value!r}: a path cannot hold a NUL byte")
    return Path(value)


def _threads(value: str) -> int:
    """A thread count: a whole number of at least 1."""
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"{value!r}: threads must be a whole number of at least 1")
    return n


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows an option's default, except where it has none (required options, unset ones)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        return action.help if action.default is None else super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    fmt = _HelpFormatter
    p = argparse.ArgumentParser(
        prog="hashrec",
        formatter_class=fmt,
        description=(
            "Recommend hashtags for microblog posts. Typical run: `hashrec data prepare` a split directory, "
            "`hashrec train` a model on it, `hashrec evaluate` it (P@k R@k F1@k), `hashrec recommend` for new posts."
        ),
    )
    p.add_argument("--version", action="version", version=f"hashrec {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    data = sub.add_parser("data", help="prepare split directories").add_subparsers(dest="data_command", required=True)
    pr = data.add_parser(
        "prepare",
        formatter_class=fmt,
        help="raw posts -> train/dev/test JSON Lines",
        description="Make a split directory (train/dev/test.jsonl.gz). DATASET is a known dataset "
        "(weibo-covid19, tweeteval, weibo-hashtaggen; give --source) or your own .jsonl/.csv/.txt "
        "file (optionally .gz). Known datasets reproduce ../shared/benchmarks exactly.",
    )
    pr.add_argument("dataset", metavar="DATASET", type=_path)
    pr.add_argument("--source", type=_path, help="folder of a known dataset, e.g. ../shared/data/weibo-covid19")
    pr.add_argument("--out", type=_path, required=True, help="split directory to write")
    pr.add_argument("--train-size", type=int, help="keep only the first N training posts (weibo: 100000)")
    pr.add_argument(
        "--heldout", type=int, help="dev and test size each (default: weibo-covid19 10000, else --fraction)"
    )
    pr.add_argument("--fraction", type=float, default=0.1, help="dev and test share each, when --heldout is not given")
    pr.add_argument(
        "--by-time",
        action="store_true",
        help="weibo-covid19: train on the earliest days, dev and test on the latest (no shuffle)",
    )
    pr.add_argument("--seed", type=int, default=0, help="shuffle seed (0 gives the reference splits)")
    _add_reading_options(pr, "own files: ")
    pr.add_argument(
        "--stream",
        action="store_true",
        help="write warmup/dev/test in stream order, for `hashrec stream`. weibo-covid19 gives the "
        "reference stream (../shared/benchmarks/weibo-stream). An own file is sorted by time (a stable "
        "sort: equal times keep the file's order) and repeats of an earlier text are dropped; test = "
        "the last 20%% of the posts, dev = the 10%% before (by count: a boundary may fall between "
        "posts of the same time, which stay in file order), or from --dev-from/--test-from (a post "
        "at exactly that time goes to the later part). Posts without a time are dropped and counted",
    )
    pr.add_argument("--dev-from", metavar="TIME", help="--stream: dev starts at this time (ISO 8601 or epoch seconds)")
    pr.add_argument("--test-from", metavar="TIME", help="--stream: test starts at this time")
    pr.set_defaults(func=_cmd_prepare)
    st = data.add_parser(
        "stats",
        formatter_class=fmt,
        help="what a split directory holds",
        description="Posts, distinct hashtags, hashtags per post, how many test gold hashtags "
        "occur in train, and text lengths, per split.",
    )
    st.add_argument("data", type=_path, metavar="DIR", help="split directory")
    st.add_argument("--json", action="store_true", help="print JSON")
    st.set_defaults(func=_cmd_stats)

    tr = sub.add_parser(
        "train",
        formatter_class=fmt,
        help="train a recommender on a split directory",
        description="Train MODEL on DATA/train (DATA/dev selects the best epoch and is scored), "
        "save it to OUT. Models: " + ", ".join(MODELS) + ".",
    )
    tr.add_argument(
        "--model", required=True, choices=list(MODELS), metavar="MODEL", help="one of: " + ", ".join(MODELS)
    )
    tr.add_argument("--data", type=_path, required=True, help="split directory (train and dev)")
    tr.add_argument("--out", type=_path, required=True, help="model directory to write")
    tr.add_argument(
        "--config", type=_path, help='JSON file of hyperparameters, e.g. {"epochs": 4, "lr": 0.005}; --set overrides it'
    )
    tr.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a hyperparameter, e.g. --set delta=0.7 --set 'windows=(1,2)'",
    )
    tr.add_argument(
        "--base",
        type=_path,
        action="append",
        default=[],
        help="boost: the trained model whose candidates it re-ranks (without it, boost trains its "
        "best recipe's acnn and scorers into OUT.parts/ first, reusing those already there; "
        "--set PART.KEY=VALUE sets a part's option, e.g. acnn.epochs=2); hknn: a trained network (acnn, "
        "cnn, attention) whose h it compares posts by (repeatable: the views' cosines are averaged)",
    )
    tr.add_argument(
        "--scorer",
        type=_path,
        action="append",
        default=[],
        help="boost: a trained model whose scores become features (repeatable)",
    )
    tr.add_argument("--resume", action="store_true", help="continue from the last checkpoint in OUT.ckpt/")
    tr.add_argument(
        "--keep-checkpoint",
        action="store_true",
        help="keep OUT.ckpt/ (acnn, cnn, attention: the last epoch's state) after a successful run",
    )
    tr.set_defaults(func=_cmd_train)

    ev = sub.add_parser("evaluate", formatter_class=fmt, help="P@k R@k F1@k of a model (paper Eq. 11)")
    ev.add_argument("--model", type=_path, required=True, help="model directory")
    ev.add_argument("--data", type=_path, required=True, help="split file, or split directory (its test split)")
    ev.add_argument("-k", type=int, default=5, help=f"report k = 1..K (K at most {MAX_EVAL_K})")
    ev.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ev.set_defaults(func=_cmd_evaluate)

    rc = sub.add_parser("recommend", formatter_class=fmt, help="hashtags for new posts")
    rc.add_argument("text", nargs="*", help="posts (or use --input)")
    rc.add_argument("--model", type=_path, required=True, help="model directory")
    rc.add_argument("--input", type=_path, help="file with one post a line; - reads standard input")
    rc.add_argument("-k", type=int, default=5, help="hashtags per post")
    rc.add_argument("--explain", action="store_true", help="also show the trigger words the attention kept")
    rc.add_argument(
        "--json",
        action="store_true",
        help='one JSON object per post: {"text", "hashtags": [{"hashtag", "score", "confidence"}]}',
    )
    rc.add_argument(
        "--min-confidence",
        type=float,
        metavar="P",
        help="leave out hashtags whose calibrated confidence (the probability that the author used "
        "it) is below P, so a post may get none; off by default",
    )
    rc.add_argument(
        "--at",
        metavar="TIME",
        help="recommend as of this time (ISO 8601 or epoch seconds): a time-aware model uses no post learned after it",
    )
    rc.add_argument("--user", metavar="ID", help="the posts' author, for models that use an author's history")
    rc.set_defaults(func=_cmd_recommend)

    sm = sub.add_parser(
        "stream",
        formatter_class=fmt,
        help="prequential evaluation: learn as posts arrive",
        description="Fit MODEL on DATA/warmup, then replay DATA/dev and DATA/test in order, CHUNK "
        "posts at a time: recommend each chunk (top 5, as of its posts' times), then learn from it. "
        "Only test posts are scored: P/R/F1@1..5 (Eq. 11) overall and for the posts whose gold "
        "hashtags were used earlier (seen) or not (new), the ceiling (share of seen posts), "
        "learning and recommending cost. Writes OUT/report.json, OUT/predictions.jsonl and "
        "OUT/per_day.png. A model that cannot learn online runs as --baseline static.",
    )
    sm.add_argument(
        "--model",
        default=DEFAULT_STREAM_MODEL,
        help="registry name, fitted on warmup here, or a "
        "trained model directory; the default is the best streaming setup (docs/results/stream.md)",
    )
    sm.add_argument("--data", type=_path, required=True, help="stream directory (`hashrec data prepare --stream`)")
    sm.add_argument("--out", type=_path, required=True, help="folder for report.json, predictions.jsonl, per_day.png")
    sm.add_argument("--chunk", type=int, default=100, help="posts recommended before the model learns them")
    sm.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="hyperparameter of the model trained here, e.g. --set tau=0.5",
    )
    sm.add_argument(
        "--baseline",
        choices=["static", "daily"],
        help="static: never learn after warm-up; daily: refit from scratch at each new (UTC) day on "
        "every post of the earlier days (for models that refit in minutes: popularity, nb, knn)",
    )
    sm.add_argument(
        "--score",
        choices=["test", "dev"],
        default="test",
        help="dev: replay and score dev only, to choose settings (never choose them on test)",
    )
    sm.set_defaults(func=_cmd_stream)

    up = sub.add_parser(
        "update",
        formatter_class=fmt,
        help="learn from new posts and save the model",
        description="Load MODEL, learn from the posts of DATA (in the file's order; .jsonl/.csv/"
        ".txt, optionally .gz, with optional time and user fields) and save the result to OUT "
        "atomically (OUT may be MODEL itself: a crash leaves the old model). Only models that "
        "learn online can: popularity, nb, knn, hknn, stream.",
    )
    up.add_argument("--model", type=_path, required=True, help="model directory")
    source = up.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", type=_path, help="file of new posts")
    source.add_argument(
        "--state",
        type=_path,
        help="the live server's state directory (`hashrec serve --state`): "
        "fold its post log into the model; OUT records how far, so that a server started on OUT "
        "replays only what was logged after (this is how an operator compacts the log)",
    )
    up.add_argument("--out", type=_path, required=True, help="model directory to write (may be --model)")
    _add_reading_options(up)
    up.set_defaults(func=_cmd_update)

    sv = sub.add_parser(
        "serve",
        formatter_class=fmt,
        help="HTTP API and compose page (docs at /docs)",
        description="Serve MODEL over HTTP: POST /recommend, POST /recommend/batch, GET /model, "
        "GET /health, the OpenAPI docs at /docs and a compose page at /.",
    )
    sv.add_argument("--model", type=_path, required=True, help="model directory")
    sv.add_argument("--host", default="127.0.0.1", help="address to bind; 0.0.0.0 exposes it to the network")
    sv.add_argument("--port", type=int, default=8000, help="TCP port to listen on")
    sv.add_argument(
        "--workers",
        type=int,
        default=1,
        help="processes, each with its own copy of the model; the "
        "connections are handed to them in turn (2 on a 2-core machine: docs/PERFORMANCE-serve.md)",
    )
    sv.add_argument("--max-batch", type=int, default=64, help="most posts in one /recommend/batch request")
    sv.add_argument("--max-text-chars", type=int, default=2000, help="longest post accepted")
    sv.add_argument(
        "--gather-ms",
        type=float,
        default=2.0,
        help="how long a model call may wait until as many requests are queued as were active "
        "around the last call, so that clients who send again after each answer share one call "
        "(a call has a large fixed cost); 0 scores whatever is queued at once",
    )
    sv.add_argument(
        "--min-confidence",
        type=float,
        metavar="P",
        help="threshold of a request that names none: hashtags whose calibrated confidence is below "
        "P are left out, and the page says that no hashtag fits; off by default",
    )
    sv.add_argument("--no-access-log", action="store_true", help="do not log every request")
    sv.add_argument(
        "--state",
        type=Path,
        help="directory of the durable post log: the server replays it into "
        "the model at start, learns what is logged while it runs, and answers GET /trending",
    )
    sv.add_argument(
        "--ingest-token-file",
        type=Path,
        help="file whose first line is the token that POST /posts "
        "needs (Authorization: Bearer TOKEN); else $HASHREC_INGEST_TOKEN; neither: POST /posts is off",
    )
    sv.add_argument(
        "--window-days",
        type=float,
        help="forget posts older than this many days (by their time, "
        "else their arrival): bounds the log and, where the model can forget, its index",
    )
    sv.add_argument(
        "--synchronous",
        choices=["full", "normal"],
        default="full",
        help="the log's durability: full fsyncs every acknowledged batch (survives a power loss); "
        "normal only at checkpoints (survives kill -9, a power loss can lose the last batches)",
    )
    sv.set_defaults(func=_cmd_serve)

    bn = sub.add_parser(
        "bench",
        formatter_class=fmt,
        help="speed and memory: tokenise, train, infer vs fastText",
        description="Measure tokenisation, training (time to fastText's dev F1@1), batch and "
        "single-post inference against fastText's predict, peak memory and the achieved "
        "fraction of matmul peak, in one run; see docs/PERFORMANCE.md.",
    )
    bn.add_argument(
        "--data",
        type=_path,
        required=True,
        help="split directory (train and dev) for the model, e.g. data/sample/weibo",
    )
    bn.add_argument(
        "--en-data",
        type=_path,
        required=True,
        help="split directory for the English tokenizer, e.g. data/sample/tweeteval",
    )
    bn.add_argument(
        "--model", default="acnn", choices=["acnn", "cnn", "attention"], help="the ACNN or one of its ablations"
    )
    bn.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a hyperparameter")
    bn.add_argument("--threads", type=_threads, default=2, help="torch, fastText and tokenizer pool threads")
    bn.add_argument(
        "--train-budget", type=float, help="seconds of model fit before it is stopped (default 480, quick 30)"
    )
    bn.add_argument("--quick", action="store_true", help="smoke run: 1,000 posts, a small model, short timings")
    bn.add_argument("--out", type=_path, help="folder for bench.json and bench.md")
    bn.set_defaults(func=_cmd_bench)

    cp = sub.add_parser(
        "compare",
        formatter_class=fmt,
        help="train and score several models (the paper's Table 1)",
        description="Train each model on DATA/train (DATA/dev for its own selection), score it on "
        "DATA/test (P@k R@k F1@k, k = 1..5) and time it; write OUT/table.md, OUT/scores.csv, "
        "OUT/f1_at_k.png and the models under OUT/models/. A failing model is reported and "
        "the others continue.",
    )
    cp.add_argument("--data", type=_path, required=True, help="split directory (train, dev, test)")
    cp.add_argument(
        "--models",
        help="comma-separated, e.g. nb,lda,ibm1,knn,fasttext,acnn (default: all "
        "registered except " + " and ".join(STACKED) + ", which build on other models: hknn needs "
        "--base, boost trains its recipe's eight models first): " + ", ".join(MODELS),
    )
    cp.add_argument("--out", type=_path, required=True, help="folder for the report and the models")
    cp.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="MODEL.KEY=VALUE",
        help="override one model's hyperparameter, e.g. --set nb.alpha=0.5",
    )
    cp.add_argument(
        "--reuse", action="store_true", help="load models already saved in OUT/models/ instead of retraining"
    )
    cp.set_defaults(func=_cmd_compare)

    from hashrec.experiment import TABLES

    ex = sub.add_parser(
        "experiment",
        formatter_class=fmt,
        help="the paper's Tables 1-4 and ablations over seeds",
        description="Train every row of each TABLE with each seed on DATA (dev for early stopping), "
        "score it on all of DATA/test and write OUT/TABLE.md (P, R, F1 at k = 1..5, mean ± std), "
        "OUT/TABLE.csv and OUT/TABLE.png (P, R, F1 against k). Runs already in "
        "OUT/results.jsonl are not repeated: rerun the same command to resume. Tables: "
        + "; ".join(f"{t}: " + ", ".join(label for label, _, _ in rows) for t, rows in TABLES.items()),
    )
    ex.add_argument("tables", nargs="+", choices=list(TABLES), metavar="TABLE", help=", ".join(TABLES))
    ex.add_argument("--data", type=_path, required=True, help="split directory (train, dev, test)")
    ex.add_argument("--out", type=_path, required=True, help="folder for results.jsonl and the reports")
    ex.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="one run per seed for each network row")
    ex.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a hyperparameter of every network row, e.g. --set epochs=5",
    )
    ex.add_argument("--n-train", type=int, help="train on the first N training posts only (default: all)")
    ex.add_argument("--n-dev", type=int, help="early-stop on the first N dev posts only (default: all)")
    ex.add_argument("--threads", type=_threads, help="torch threads (default: torch's choice, the cores)")
    ex.add_argument("--save-models", action="store_true", help="keep each trained model in OUT/models/")
    ex.set_defaults(func=_cmd_experiment)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except HashrecError as e:
        print(f"hashrec: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("hashrec: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except OSError as e:  # a path the checks could not foresee: a full disk, a folder that vanished
        where = ", ".join(str(f) for f in (e.filename, e.filename2) if f is not None)
        print(f"hashrec: error: {where + ': ' if where else ''}{e.strerror or e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
