"""Stage 1 of the pipeline: raw posts -> (clean text, hashtags) -> train/dev/test split directories.

The extraction rules and split protocol are those of ../shared/benchmarks/README.md, so
`prepare("weibo-covid19", ...)` and `prepare("tweeteval", ...)` give exactly the reference splits.
A split directory holds `train`, `dev` and `test` as JSON Lines (`.jsonl` or `.jsonl.gz`), one
`{"text": ..., "hashtags": [...]}` a line.
"""

from __future__ import annotations

import bisect
import csv
import dataclasses
import gzip
import json
import math
import random
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Literal

from hashrec.errors import DataError
from hashrec.store import atomic_open, check_output_dir, claim_output_dir

SPLITS = ("train", "dev", "test")
WEIBO_TAG = re.compile(r"#([^#\n]{1,40}?)#")
# Applied one after another, in this order: removing a video link can expose a stray " ?".
WEIBO_LEFTOVERS = [re.compile(p) for p in (r"收起全文d", r"L[^\s#]{0,40}的微博视频", r"\s\?(?=\s|$)")]
TWITTER_TAG = re.compile(r"(?:(?<=\s)|^)#(\w+)(?!…|\w)")
TWITTER_TAG_SPAN = re.compile(r"#\w+…?")
CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
HashtagStyle = Literal["weibo", "twitter", "auto"]
PREPARE = "data prepare"  # the kind of folder data prepare makes (hashrec.store.claim_output_dir)


@dataclass(frozen=True)
class Post:
    """A post as the models see it: text without its hashtags, and the hashtags in order.

    `time` is when it was posted, in POSIX seconds (UTC), and `user` its author's id; both are
    optional, and only the stream (hashrec.stream) and time-aware models read them.
    """

    text: str
    hashtags: tuple[str, ...] = field(default_factory=tuple)
    time: float | None = None
    user: str | None = None


def parse_time(value: object, where: str) -> float:
    """POSIX seconds from epoch seconds (a number or a numeric string) or ISO 8601 (a date or a
    date and time; without a zone it is UTC).

    >>> parse_time("2020-03-18", "x"), parse_time(1584489600, "x"), parse_time("2020-03-18T08:00:00+08:00", "x")
    (1584489600.0, 1584489600.0, 1584489600.0)
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            return float(text) if re.fullmatch(r"-?\d+(\.\d*)?", text) else _iso_seconds(text)
        except ValueError:
            pass
    raise DataError(
        f"{where}: time {value!r} is neither ISO 8601 (2020-03-18 or 2020-03-18T09:30:00+08:00) "
        "nor epoch seconds; fix the value or name another field with --time-field"
    )


def _iso_seconds(text: str) -> float:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def format_time(seconds: float) -> str:
    """ISO 8601 in UTC: a plain date at midnight (the weibo stream's days), else date and time.

    >>> format_time(1584489600.0), format_time(1584491400.5)
    ('2020-03-18', '2020-03-18T00:30:00.500000+00:00')
    """
    moment = datetime.fromtimestamp(seconds, UTC)
    if moment.time() == datetime.min.time():
        return moment.date().isoformat()
    return moment.isoformat()


def day_seconds(day: date) -> float:
    """POSIX seconds of a day's midnight in UTC."""
    return datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()


def post_fields(obj: dict, where: str, time_field: str = "time", user_field: str = "user") -> dict[str, object]:
    """The optional `time` and `user` of a post's record (a JSON object or a CSV row); empty means absent."""
    fields: dict[str, object] = {}
    raw_time = obj.get(time_field)
    if raw_time not in (None, ""):
        fields["time"] = parse_time(raw_time, where)
    raw_user = obj.get(user_field)
    if isinstance(raw_user, (str, int)) and not isinstance(raw_user, bool) and str(raw_user).strip():
        fields["user"] = str(raw_user).strip()
    elif raw_user not in (None, ""):
        raise DataError(f"{where}: user {raw_user!r} must be a string or an integer id (or null)")
    return fields


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(i for i in items if i))


def extract_weibo(raw: str) -> Post:
    """Weibo `#topic#` hashtags (stripped, deduplicated) and the text with them and scraper leftovers removed."""
    tags = _unique(m.strip() for m in WEIBO_TAG.findall(raw))
    text = WEIBO_TAG.sub(" ", raw)
    for leftover in WEIBO_LEFTOVERS:
        text = leftover.sub(" ", text)
    return Post(" ".join(text.split()), tags)


def extract_twitter(raw: str) -> Post:
    """Twitter `#tag` hashtags (lower-cased; cut-off `#tag…` and the `semst` artifact dropped)."""
    tags = _unique(t.lower() for t in TWITTER_TAG.findall(raw) if t.lower() != "semst")
    return Post(" ".join(TWITTER_TAG_SPAN.sub(" ", raw).split()), tags)


def extract(raw: str, style: HashtagStyle = "auto") -> Post:
    """Extract hashtags by `style`; "auto" uses the Weibo form for text with Chinese characters."""
    if style == "auto":
        style = "weibo" if CJK.search(raw) and WEIBO_TAG.search(raw) else "twitter"
    return extract_weibo(raw) if style == "weibo" else extract_twitter(raw)


# ---------------------------------------------------------------------------- raw readers

WEIBO_YEAR = 2020  # the crawl's files are named <month>.<day>.csv, all of 2020


def _day(path: Path) -> tuple[int, int]:
    """(month, day) of a weibo-covid19 file named `<month>.<day>.csv`: its posts' day, and the files' order."""
    try:
        month, day = (int(x) for x in path.name.removesuffix(".csv").split("."))
        date(WEIBO_YEAR, month, day)
    except ValueError:
        raise DataError(f"{path}: expected a file named <month>.<day>.csv (the day of its posts)") from None
    return month, day


def read_weibo_covid19(source: str | Path, chronological: bool = False) -> Iterator[Post]:
    """The weibo-covid19 CSVs: sorted by file name (or by date), column `text`, GB18030 with bad bytes replaced.

    Each post's `time` is its file's day (midnight UTC) and its `user` the `userid` column.
    """
    files = sorted(Path(source).glob("*.csv"), key=_day if chronological else (lambda p: p.name))
    if not files:
        raise DataError(f"{source}: no *.csv files; point --source at ../shared/data/weibo-covid19")
    for path in files:
        yield from read_weibo_csv(path)


def read_weibo_csv(path: Path) -> Iterator[Post]:
    """One weibo-covid19 CSV (one day of the crawl): column `text`, GB18030 with bad bytes replaced;
    `time` = the file's day, `user` = the `userid` column, stripped (empty or missing: None)."""
    month, day = _day(path)
    time = day_seconds(date(WEIBO_YEAR, month, day))
    with open(path, encoding="gb18030", errors="replace", newline="") as f:
        reader = csv.DictReader(f)
        if "text" not in (reader.fieldnames or []):
            raise DataError(f"{path} line 1: no 'text' column (header: {reader.fieldnames})")
        for row in reader:
            if row.get("text") is not None:
                user = (row.get("userid") or "").strip() or None
                yield dataclasses.replace(extract_weibo(row["text"]), time=time, user=user)


def read_tweeteval(source: str | Path) -> Iterator[Post]:
    """Every `*_text.txt` under `datasets/` (sorted by path), one tweet a line."""
    root = Path(source)
    files = sorted((root / "datasets" if (root / "datasets").is_dir() else root).rglob("*_text.txt"))
    if not files:
        raise DataError(f"{source}: no *_text.txt files; point --source at ../shared/data/tweeteval")
    for path in files:
        with open(path, encoding="utf-8") as f:
            for line in f:
                yield extract_twitter(line.rstrip("\n"))


def read_weibo_hashtaggen(source: str | Path) -> Iterator[Post]:
    """Wang et al. 2019: pre-segmented `{valid,test}_post.txt` with `;`-separated, segmented tags."""
    root = Path(source)
    for part in ("valid", "test"):
        posts, tags = root / f"{part}_post.txt", root / f"{part}_tag.txt"
        if not posts.is_file() or not tags.is_file():
            raise DataError(
                f"{root}: missing {posts.name} or {tags.name}; point --source at ../shared/data/weibo-hashtaggen"
            )
        with open(posts, encoding="utf-8") as fp, open(tags, encoding="utf-8") as ft:
            for text, tag_line in zip(fp, ft, strict=True):
                hashtags = _unique(t.replace(" ", "") for t in tag_line.strip().split(";"))
                yield Post(" ".join(text.split()), hashtags)


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, line), decoded line by line so that a bad byte is reported with its line.

    A byte-order mark at the start (Excel's "CSV UTF-8") is dropped.
    """
    opener = gzip.open if path.name.endswith(".gz") else open
    n = 0
    try:
        with opener(path, "rb") as f:
            for n, raw in enumerate(f, 1):
                try:
                    yield n, raw.decode("utf-8-sig" if n == 1 else "utf-8")
                except UnicodeDecodeError:
                    raise DataError(
                        f"{path} line {n}: not valid UTF-8; re-encode the file as UTF-8 "
                        "(e.g. `iconv -f GB18030 -t UTF-8`)"
                    ) from None
    except (OSError, EOFError) as e:
        raise DataError(f"{path} line {n + 1}: unreadable ({e}); is the file complete?") from None


def _check_hashtags(value: object, where: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise DataError(f"{where}: 'hashtags' must be a list of strings, got {type(value).__name__}")
    odd = next((t for t in value if not isinstance(t, str)), None)
    if odd is not None:
        raise DataError(f"{where}: 'hashtags' must be a list of strings, got a list holding {type(odd).__name__}")
    return _unique(t.strip().lstrip("#").strip() for t in value)


Malformed = Callable[[DataError], None]  # told of a row that is not one post; None: such a row is an error


def _malformed(error: DataError, on_malformed: Malformed | None) -> None:
    """Skip a row that is not one post if the caller counts them (data prepare); else stop at it."""
    if on_malformed is None:
        raise error
    on_malformed(error)


def split_hashtag_cell(cell: str) -> tuple[str, ...]:
    """A CSV hashtags cell: tags separated by `;` or `|` (a comma is part of a tag), each optionally
    `#tag` or `#topic#`; a part made only of such forms (`#a #b`, `#武汉# #加油#`) holds several.

    >>> split_hashtag_cell("New York, NY; #b|#武汉加油#"), split_hashtag_cell("#a #b")
    (('New York, NY', 'b', '武汉加油'), ('a', 'b'))
    """
    tags: list[str] = []
    for part in re.split(r"[;|]", cell):
        part = part.strip()
        if re.fullmatch(r"(#[^#]+#\s*)+", part):
            tags += WEIBO_TAG.findall(part)
        elif re.fullmatch(r"(#\S+\s*){2,}", part):
            tags += [word.lstrip("#") for word in part.split()]
        else:
            tags.append(part.lstrip("#"))  # "C#" keeps its '#'; "#topic#" is the form above
    return _unique(t.strip() for t in tags)


def read_jsonl(
    path: str | Path,
    *,
    text_field: str = "text",
    hashtags_field: str = "hashtags",
    style: HashtagStyle = "auto",
    require_hashtags_field: bool = False,
    time_field: str = "time",
    user_field: str = "user",
    on_malformed: Malformed | None = None,
) -> Iterator[Post]:
    """JSON Lines posts; without a hashtags field, hashtags are extracted from (and removed from) the text.

    The optional `time_field` (ISO 8601 or epoch seconds) and `user_field` fill `Post.time` and `Post.user`.
    A line that is not one post (invalid JSON, no string text) goes to `on_malformed`, or is an error.
    """
    path = Path(path)
    for n, line in _lines(path):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            _malformed(
                DataError(
                    f"{path} line {n}: not valid JSON ({e.msg}); each line must be one "
                    '{"text": ..., "hashtags": [...]} object'
                ),
                on_malformed,
            )
            continue
        if not isinstance(obj, dict) or not isinstance(obj.get(text_field), str):
            _malformed(
                DataError(
                    f"{path} line {n}: expected an object with a string {text_field!r} field, got {line.strip()[:80]!r}"
                ),
                on_malformed,
            )
            continue
        extra = post_fields(obj, f"{path} line {n}", time_field, user_field)
        if hashtags_field in obj:
            yield Post(
                " ".join(obj[text_field].split()), _check_hashtags(obj[hashtags_field], f"{path} line {n}"), **extra
            )
        elif require_hashtags_field:
            raise DataError(f"{path} line {n}: no {hashtags_field!r} field; split files list each post's hashtags")
        else:
            yield dataclasses.replace(extract(obj[text_field], style), **extra)


def read_csv(
    path: str | Path,
    *,
    text_field: str = "text",
    hashtags_field: str = "hashtags",
    style: HashtagStyle = "auto",
    time_field: str = "time",
    user_field: str = "user",
    on_malformed: Malformed | None = None,
) -> Iterator[Post]:
    """CSV with a header, delimited by `,`, `;` or a tab: whichever the header line uses (csv.Sniffer;
    a one-column header reads as `,`). The optional hashtags column is split by `split_hashtag_cell`;
    where it is absent or its cell empty, hashtags are extracted from the text. Optional `time_field`
    and `user_field` columns as in `read_jsonl`. A row whose cells do not match the header goes to
    `on_malformed`, or is an error.
    """
    path = Path(path)
    lines = (line for _, line in _lines(path))
    first = next(lines, "")
    try:
        delimiter = csv.Sniffer().sniff(first, delimiters=",;\t").delimiter
    except csv.Error:  # one column: nothing to tell the delimiter by
        delimiter = ","
    reader = csv.reader(_chain(first, lines), delimiter=delimiter)
    header = next(reader, [])
    if text_field not in header:
        raise DataError(
            f"{path} line 1: no {text_field!r} column (header: {header}); name the text column with --text-field"
        )
    for cells in reader:
        where = f"{path} line {reader.line_num}"
        if not cells:
            continue
        if len(cells) != len(header):
            _malformed(
                DataError(
                    f"{where}: {len(cells)} cells, the header has {len(header)} (an unquoted "
                    f"{delimiter!r} in a cell?); quote the cell or fix the row"
                ),
                on_malformed,
            )
            continue
        row = dict(zip(header, cells))
        text, extra = row[text_field], post_fields(row, where, time_field, user_field)
        tags = split_hashtag_cell(row.get(hashtags_field) or "")
        if tags:
            yield Post(" ".join(text.split()), tags, **extra)
        else:
            yield dataclasses.replace(extract(text, style), **extra)


def _chain(first: str, rest: Iterator[str]) -> Iterator[str]:
    yield first
    yield from rest


def read_txt(path: str | Path, *, style: HashtagStyle = "auto", **_: object) -> Iterator[Post]:
    """Plain text, one post a line, hashtags inline."""
    for _, line in _lines(Path(path)):
        yield extract(line.rstrip("\r\n"), style)


def read_user_file(path: str | Path, **options: object) -> Iterator[Post]:
    """A user's own posts, by extension: .jsonl, .csv or .txt, each optionally .gz."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    name = path.name.removesuffix(".gz")
    readers: dict[str, Callable[..., Iterator[Post]]] = {
        ".jsonl": read_jsonl,
        ".json": read_jsonl,
        ".csv": read_csv,
        ".txt": read_txt,
    }
    for ext, reader in readers.items():
        if name.endswith(ext):
            return reader(path, **options)
    raise DataError(f"{path}: unknown file type; use .jsonl, .csv or .txt (optionally gzipped)")


DATASETS: dict[str, Callable[[str | Path], Iterator[Post]]] = {
    "weibo-covid19": read_weibo_covid19,
    "tweeteval": read_tweeteval,
    "weibo-hashtaggen": read_weibo_hashtaggen,
}
# weibo-covid19's reference split has fixed 10k dev/test (docs/paper.md §10); the others take n // 10 each.
DEFAULT_HELDOUT = {"weibo-covid19": 10_000}


# ---------------------------------------------------------------------------- splits


@dataclass
class Tally:
    """What `prepare` did with the rows it read: how many, and how many it dropped for each reason."""

    read: int = 0
    dropped: Counter = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)  # the first row dropped for each reason

    def drop(self, reason: str, example: str = "") -> None:
        self.dropped[reason] += 1
        self.examples.setdefault(reason, example)

    def malformed(self, error: DataError) -> None:
        self.read += 1
        self.drop("malformed row", str(error))

    def summary(self) -> str:
        kept = self.read - sum(self.dropped.values())
        lines = [f"kept {kept:,} of {self.read:,} rows read"]
        for reason, n in self.dropped.most_common():
            example = self.examples[reason]
            lines.append(f"  dropped {n:,}: {reason}" + (f" (first: {example})" if example else ""))
        return "\n".join(lines)


def clean(posts: Iterable[Post], tally: Tally | None = None) -> list[Post]:
    """Drop posts with empty text or no hashtag, and repeats of an earlier post's text (counted in `tally`)."""
    tally = tally if tally is not None else Tally()
    seen: set[str] = set()
    kept = []
    for post in posts:
        tally.read += 1
        if not post.text:
            tally.drop("empty text")
        elif not post.hashtags:
            tally.drop("no hashtag", post.text[:60])
        elif post.text in seen:
            tally.drop("duplicate text", post.text[:60])
        else:
            seen.add(post.text)
            kept.append(post)
    return kept


def split(
    posts: list[Post],
    *,
    heldout: int | None = None,
    fraction: float = 0.1,
    seed: int = 0,
    train_size: int | None = None,
    by_time: bool = False,
) -> dict[str, list[Post]]:
    """Shuffle with `random.Random(seed)`; test = first `heldout`, dev = next `heldout`, train = rest.

    `heldout` defaults to `fraction` of the posts (the reference rule n // 10 at 0.1). With
    `by_time` the posts keep their (chronological) order: train is the earliest, dev the next,
    test the latest: the realistic setting, where new hashtags keep appearing.
    """
    posts = list(posts)
    for option, value in (("--heldout", heldout), ("--train-size", train_size)):
        if value is not None and value < 1:
            raise DataError(f"{option} must be a positive number of posts, got {value}")
    if not 0 < fraction < 0.5:
        raise DataError(f"--fraction must be in (0, 0.5): the share of posts for dev and for test each, got {fraction}")
    n = heldout if heldout is not None else math.floor(len(posts) * fraction + 1e-9)  # 0.1: n // 10
    if len(posts) < 2 * n + 1 or len(posts) < 3:
        raise DataError(
            f"only {len(posts)} usable posts (non-empty text with at least one hashtag); "
            "need at least 3, and more than twice the held-out size"
        )
    if by_time:
        train = posts[: len(posts) - 2 * n]
        return {
            "test": posts[len(posts) - n :],
            "dev": posts[len(posts) - 2 * n : len(posts) - n],
            "train": train[-train_size:] if train_size else train,
        }
    random.Random(seed).shuffle(posts)
    train = posts[2 * n :]
    return {"test": posts[:n], "dev": posts[n : 2 * n], "train": train[:train_size] if train_size else train}


def post_record(post: Post) -> dict[str, object]:
    """A post as one JSON Lines object: text and hashtags; a dated post also its time and user (null if unknown)."""
    record: dict[str, object] = {"text": post.text, "hashtags": list(post.hashtags)}
    if post.time is not None:
        record["time"] = format_time(post.time)
    if post.time is not None or post.user is not None:
        record["user"] = post.user
    return record


def write_jsonl(path: str | Path, posts: Iterable[Post]) -> None:
    """Write posts as (gzipped, if the name ends in .gz) JSON Lines, atomically."""
    path = Path(path)
    gz = path.name.endswith(".gz")
    with atomic_open(path, "wb") as raw:
        f = gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) if gz else raw
        for p in posts:
            f.write((json.dumps(post_record(p), ensure_ascii=False) + "\n").encode())
        if gz:
            f.close()


def prepare(
    name_or_file: str | Path,
    out: str | Path,
    *,
    source: str | Path | None = None,
    train_size: int | None = None,
    heldout: int | None = None,
    fraction: float = 0.1,
    seed: int = 0,
    by_time: bool = False,
    tally: Tally | None = None,
    **read_options: object,
) -> dict[str, int]:
    """Make a split directory from a known dataset (`source` = its folder) or a user's file.

    Returns the number of posts in each split; `tally` (if given) counts the rows read and those
    dropped, by reason. `out` is checked before reading (`claim_output_dir`: absent, empty, or made
    by data prepare). Known names: weibo-covid19, tweeteval, weibo-hashtaggen. `by_time`
    (weibo-covid19 only) reads the days in date order and tests on the latest posts.
    """
    name = str(name_or_file)
    tally = tally if tally is not None else Tally()
    if by_time and name != "weibo-covid19":
        raise DataError("--by-time needs dated posts: only the weibo-covid19 dataset has them")
    if name in DATASETS and source is None:
        raise DataError(f"dataset {name!r} needs --source PATH (e.g. ../shared/data/{name})")
    inputs = [source] if name in DATASETS else [name]
    check_output_dir(out, PREPARE, inputs)
    if name in DATASETS:
        raw = read_weibo_covid19(source, chronological=True) if by_time else DATASETS[name](source)
        posts = clean(raw, tally)
        heldout = heldout if heldout is not None else DEFAULT_HELDOUT.get(name)
    else:
        posts = clean(read_user_file(name, on_malformed=tally.malformed, **read_options), tally)
    if not posts:
        raise DataError(
            f"{name}: not a single post with both text and a hashtag ({tally.summary()}); check "
            "the hashtag style (--hashtag-style weibo|twitter) or the hashtags field"
        )
    if name in DATASETS and not by_time:  # the reference random splits hold text and hashtags only
        posts = [Post(p.text, p.hashtags) for p in posts]
    splits = split(posts, heldout=heldout, fraction=fraction, seed=seed, train_size=train_size, by_time=by_time)
    out = claim_output_dir(out, PREPARE, inputs)
    for part, items in splits.items():
        write_jsonl(out / f"{part}.jsonl.gz", items)
    return {part: len(items) for part, items in splits.items()}


# ---------------------------------------------------------------------------- streams

STREAM_PARTS = ("warmup", "dev", "test")
# The reference stream (../shared/benchmarks/weibo-stream): dev from 2020-03-13, test from 2020-03-18.
WEIBO_STREAM_FROM = {"dev": day_seconds(date(2020, 3, 13)), "test": day_seconds(date(2020, 3, 18))}
STREAM_DEV_SHARE, STREAM_TEST_SHARE = 0.1, 0.2


def in_time_order(posts: Iterable[Post]) -> tuple[list[Post], int]:
    """The posts with a time, stably sorted by it (equal times keep their input order), and how many
    had no time (dropped: a post without a time has no place in a stream)."""
    timed, untimed = [], 0
    for post in posts:
        if post.time is None:
            untimed += 1
        else:
            timed.append(post)
    return sorted(timed, key=lambda p: p.time), untimed


def shuffle_within_days(posts: list[Post], seed: int = 0) -> list[Post]:
    """Each day's posts (in the order given, days consecutive) shuffled by one `random.Random(seed)`,
    called on the days in order: the reference stream's order within a day, whose files carry no hour."""
    rng = random.Random(seed)
    days: dict[float | None, list[Post]] = {}
    for post in posts:
        days.setdefault(post.time, []).append(post)
    for day_posts in days.values():
        rng.shuffle(day_posts)
    return [p for day_posts in days.values() for p in day_posts]


def stream_split(
    posts: list[Post], dev_from: float | None = None, test_from: float | None = None
) -> dict[str, list[Post]]:
    """warmup / dev / test of a stream in time order.

    test = the posts at or after `test_from`, else the last 20% of the posts by count; dev = the
    posts at or after `dev_from` before test, else the 10% by count before test. A count boundary
    falls between two posts even where they share a time: those stay in stream order, and the
    replay counts the earlier one as before the later.
    """
    times = [p.time for p in posts]
    n = len(posts)
    test_at = bisect.bisect_left(times, test_from) if test_from is not None else n - math.floor(n * STREAM_TEST_SHARE)
    dev_at = bisect.bisect_left(times, dev_from) if dev_from is not None else test_at - math.floor(n * STREAM_DEV_SHARE)
    parts = {"warmup": posts[: max(dev_at, 0)], "dev": posts[max(dev_at, 0) : test_at], "test": posts[test_at:]}
    empty = [name for name, items in parts.items() if not items]
    if empty or dev_at > test_at:
        raise DataError(
            f"{n} dated posts give an empty {' and '.join(empty) or 'dev'} part; "
            "a stream needs warm-up, dev and test posts: move --dev-from/--test-from or add posts"
        )
    return parts


def prepare_stream(
    name_or_file: str | Path,
    out: str | Path,
    *,
    source: str | Path | None = None,
    dev_from: object = None,
    test_from: object = None,
    **read_options: object,
) -> dict[str, int]:
    """Write OUT/warmup, dev and test.jsonl.gz in stream order; returns the posts per part (and the
    posts dropped for having no time, under "no_time").

    weibo-covid19 gives the reference stream exactly (../shared/benchmarks/weibo-stream/README.md):
    days in date order, repeats dropped in date-then-record order, each day shuffled. A user's file
    is sorted by time (stably), with repeats of an earlier text dropped after the sort.
    `dev_from`/`test_from` are times (ISO 8601 or epoch seconds).
    """
    name = str(name_or_file)
    bounds = {
        part: None if value is None else parse_time(value, f"--{part}-from")
        for part, value in (("dev", dev_from), ("test", test_from))
    }
    if name in DATASETS and source is None:
        raise DataError(f"dataset {name!r} needs --source PATH (e.g. ../shared/data/{name})")
    inputs = [source] if name in DATASETS else [name]
    check_output_dir(out, PREPARE, inputs)
    if name == "weibo-covid19":
        posts, untimed = shuffle_within_days(clean(read_weibo_covid19(source, chronological=True))), 0
        bounds = {part: WEIBO_STREAM_FROM[part] if at is None else at for part, at in bounds.items()}
    elif name in DATASETS:
        raise DataError(f"--stream needs dated posts: {name} has none (weibo-covid19 or your own file with times)")
    else:
        ordered, untimed = in_time_order(read_user_file(name, **read_options))
        if not ordered:
            raise DataError(
                f"{name}: no post has a time; --stream orders posts by their time field "
                "(ISO 8601 or epoch seconds): name it with --time-field"
            )
        posts = clean(ordered)
    parts = stream_split(posts, bounds["dev"], bounds["test"])
    out = claim_output_dir(out, PREPARE, inputs)
    for part, items in parts.items():
        write_jsonl(out / f"{part}.jsonl.gz", items)
    return {**{part: len(items) for part, items in parts.items()}, **({"no_time": untimed} if untimed else {})}


def split_file(directory: str | Path, part: str) -> Path:
    """The file of split `part` in `directory` (`part.jsonl` or `part.jsonl.gz`)."""
    directory = Path(directory)
    for suffix in (".jsonl.gz", ".jsonl"):
        if (directory / f"{part}{suffix}").is_file():
            return directory / f"{part}{suffix}"
    raise DataError(f"{directory}: no {part}.jsonl or {part}.jsonl.gz; make one with `hashrec data prepare`")


def read_posts(path: str | Path) -> list[Post]:
    """Posts of a split file, or of the `test` split if `path` is a split directory."""
    path = Path(path)
    if path.is_dir():
        path = split_file(path, "test")
    if path.name.endswith((".jsonl", ".jsonl.gz")):
        return list(read_jsonl(path, require_hashtags_field=True))
    return list(read_user_file(path))


def load_split(directory: str | Path, part: str) -> list[Post]:
    return read_posts(split_file(directory, part))


def split_stats(directory: str | Path) -> dict[str, dict[str, float | int]]:
    """Per split: posts, distinct hashtags, hashtags per post, text length (characters) quantiles;
    for dev and test also the share of their gold hashtags that occur in train (a recall ceiling)."""
    splits = {part: load_split(directory, part) for part in SPLITS if _has_split(directory, part)}
    if "train" not in splits:
        raise DataError(f"{directory}: no train split; make one with `hashrec data prepare`")
    seen = {t for p in splits["train"] for t in p.hashtags}
    out: dict[str, dict[str, float | int]] = {}
    for part, posts in splits.items():
        tags = [t for p in posts for t in p.hashtags]
        lengths = sorted(len(p.text) for p in posts)
        row: dict[str, float | int] = {
            "posts": len(posts),
            "distinct_hashtags": len(set(tags)),
            "hashtags_per_post": len(tags) / max(len(posts), 1),
            **{
                f"length_p{q}": lengths[min(len(lengths) - 1, len(lengths) * q // 100)] if lengths else 0
                for q in (10, 50, 90, 99)
            },
        }
        if part != "train":
            row["gold_seen_in_train"] = sum(t in seen for t in tags) / max(len(tags), 1)
        out[part] = row
    return out


def _has_split(directory: str | Path, part: str) -> bool:
    return any((Path(directory) / f"{part}{suffix}").is_file() for suffix in (".jsonl.gz", ".jsonl"))


def format_stats(stats: dict[str, dict[str, float | int]]) -> str:
    keys = list(dict.fromkeys(k for row in stats.values() for k in row))
    lines = ["\t".join(["split", *keys])]
    for part, row in stats.items():
        lines.append(
            "\t".join(
                [part, *(f"{row[k]:.3f}" if isinstance(row.get(k), float) else str(row.get(k, "-")) for k in keys)]
            )
        )
    return "\n".join(lines)
