"""The live server's durable post log: every accepted post, in order, in SQLite (WAL mode) under `--state DIR`.

`POST /posts` appends a batch in one transaction and answers only after the commit, so an
acknowledged post survives a kill -9 of the server (SQLite's WAL is written by the process
before `commit` returns; the operating system keeps it when the process dies). A power loss is
another matter, and `synchronous` decides it:

- `full` (the default): the WAL is fsynced at every commit; an acknowledged batch survives a
  power loss too. It costs one fsync per batch (docs/PERFORMANCE-serve.md, the live section).
- `normal`: the WAL is fsynced only at checkpoints; a power loss (or an OS crash) can lose the
  batches committed since the last checkpoint, though the database stays consistent.

Each row holds a monotonically increasing id (AUTOINCREMENT: never reused, even after
forgetting), the text, the hashtags (JSON), the post's time and user (null when not given),
the arrival time, and `at`: the post's time, or its arrival time when it has none, which the
trending hashtags and `--window-days` count by. A model records how far into the log it has
learned as `trained_on_["log_position"]` (the last id it folded), so a server started on it
replays only the rest, and `hashrec update --state` compacts the log into a model.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from hashrec.data import Post
from hashrec.errors import DataError

if TYPE_CHECKING:
    from hashrec.models.base import Recommender

LOG_FILE = "posts.sqlite"
POSITION = "log_position"  # the key in trained_on_: the id of the last post a model learned
Synchronous = Literal["full", "normal"]
SCHEMA = """
CREATE TABLE IF NOT EXISTS posts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    text TEXT NOT NULL,
    hashtags TEXT NOT NULL,
    time REAL,
    user TEXT,
    arrival REAL NOT NULL,
    at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS post_tags (
    post_id INTEGER NOT NULL,
    tag TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS post_tags_at ON post_tags (at);
CREATE INDEX IF NOT EXISTS posts_at ON posts (at);
"""


def log_position(model: Recommender) -> int:
    """The id of the last logged post `model` has learned (0: none)."""
    return int(model.trained_on_.get(POSITION, 0))


def learn_rows(model: Recommender, rows: list[tuple[int, Post]]) -> None:
    """`model.update` with logged posts (in id order), recording the last id as how far it learned."""
    model.update([p for _, p in rows])
    model.trained_on_[POSITION] = rows[-1][0]


def learn_log(model: Recommender, log: PostLog) -> int:
    """Learn every logged post past the model's log position, in order; how many."""
    n = 0
    for rows in log.iter_after(log_position(model)):
        learn_rows(model, rows)
        n += len(rows)
    return n


class PostLog:
    """Posts appended in batches, read back in order by id; one connection per instance, thread-safe.

    Several processes (the server's workers) may open the same log: SQLite serialises their
    writes (a writer waits up to `busy_ms` for another's transaction) and WAL lets readers read
    while one writes.
    """

    def __init__(self, state_dir: str | Path, synchronous: Synchronous = "full", busy_ms: int = 10_000) -> None:
        if synchronous not in ("full", "normal"):
            raise DataError(f"synchronous must be 'full' or 'normal', got {synchronous!r}")
        self.path = Path(state_dir) / LOG_FILE
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=busy_ms / 1000, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={synchronous.upper()}")
            self._db.executescript(SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise DataError(
                f"{self.path}: cannot open the post log ({exc}); --state must name a writable "
                "directory that holds only hashrec's post log"
            ) from exc
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def append(self, posts: Sequence[Post], arrival: float) -> int:
        """Write the posts in one transaction, committed on return; the id of the last one."""
        rows = [
            (
                p.text,
                json.dumps(list(p.hashtags), ensure_ascii=False),
                p.time,
                p.user,
                arrival,
                arrival if p.time is None else p.time,
            )
            for p in posts
        ]
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                last = 0
                for row in rows:
                    last = self._db.execute(
                        "INSERT INTO posts (text, hashtags, time, user, arrival, at) VALUES (?, ?, ?, ?, ?, ?)", row
                    ).lastrowid
                    self._db.executemany(
                        "INSERT INTO post_tags (post_id, tag, at) VALUES (?, ?, ?)",
                        [(last, t, row[5]) for t in json.loads(row[1])],
                    )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return last

    def read_after(self, position: int, limit: int = 10_000) -> list[tuple[int, Post]]:
        """Up to `limit` posts with an id above `position`, in id order, with their ids."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, text, hashtags, time, user FROM posts WHERE id > ? ORDER BY id LIMIT ?", (position, limit)
            ).fetchall()
        return [(i, Post(text, tuple(json.loads(tags)), time, user)) for i, text, tags, time, user in rows]

    def iter_after(self, position: int, batch: int = 10_000) -> Iterator[list[tuple[int, Post]]]:
        """Every post with an id above `position`, `batch` at a time."""
        while rows := self.read_after(position, batch):
            yield rows
            position = rows[-1][0]

    def last_id(self) -> int:
        """The id of the newest post ever logged (0: none; forgetting does not lower it)."""
        with self._lock:
            row = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'posts'").fetchone()
        return int(row[0]) if row else 0

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM posts").fetchone()[0])

    def newest_at(self) -> float | None:
        """The latest `at` (post time, else arrival) in the log; None when it is empty."""
        with self._lock:
            return self._db.execute("SELECT MAX(at) FROM posts").fetchone()[0]

    def tag_counts(self, start: float, stop: float) -> dict[str, int]:
        """Uses of each hashtag by posts with start <= at < stop."""
        with self._lock:
            rows = self._db.execute(
                "SELECT tag, COUNT(*) FROM post_tags WHERE at >= ? AND at < ? GROUP BY tag", (start, stop)
            ).fetchall()
        return dict(rows)

    def forget_before(self, at: float) -> int:
        """Delete the posts with `at` before the given time; how many were deleted."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("DELETE FROM post_tags WHERE at < ?", (at,))
                n = self._db.execute("DELETE FROM posts WHERE at < ?", (at,)).rowcount
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return n

    def span(self) -> tuple[float, float] | None:
        """The earliest and the latest `at` (post time, else arrival) in the log; None when it is empty."""
        with self._lock:
            row = self._db.execute("SELECT MIN(at), MAX(at) FROM posts").fetchone()
        return None if row[0] is None else (float(row[0]), float(row[1]))


BASELINE_WINDOWS = 24  # the expected count comes from the 24 windows before the current one
DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """Seconds from '90s', '30m', '1h' or '7d'.

    >>> parse_duration("1h"), parse_duration("1.5d")
    (3600.0, 129600.0)
    """
    match = DURATION.fullmatch(text.strip())
    if not match or float(match[1]) <= 0:
        raise DataError(f"window {text!r}: give a positive number and a unit, s, m, h or d (e.g. 1h, 30m, 7d)")
    return float(match[1]) * UNIT_S[match[2]]


def rising(log: PostLog, window_s: float, k: int) -> list[dict[str, float | int | str]]:
    """The k hashtags rising most in the last `window_s` seconds of the log, with their counts.

    The window ends at the log's latest `at` (inclusive), so a replayed stream from 2020 has
    trends too. A hashtag rises when it is used more in the window (count c) than expected from
    the BASELINE_WINDOWS windows before it: expected e = (its uses there) x window / (the part of
    that baseline the log covers). It ranks by the Poisson z-score (c - e) / sqrt(max(e, 1)), the
    floor of 1 keeping a hashtag seen once from outranking a real burst; ties by count. A
    hashtag born in the window has e = 0 and scores c.
    """
    span = log.span()
    if span is None:
        return []
    oldest, newest = span
    stop = newest + 1e-6
    start = stop - window_s
    base_start = max(start - BASELINE_WINDOWS * window_s, oldest)
    now, before = log.tag_counts(start, stop), log.tag_counts(base_start, start) if base_start < start else {}
    covered = start - base_start
    out = []
    for tag, c in now.items():
        e = before.get(tag, 0) * window_s / covered if covered > 0 else 0.0
        if c > e:
            out.append({"hashtag": tag, "count": c, "expected": round(e, 3), "score": (c - e) / max(e, 1.0) ** 0.5})
    out.sort(key=lambda r: (-r["score"], -r["count"], r["hashtag"]))
    return out[:k]
