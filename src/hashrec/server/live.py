"""The server that learns: posts come in over `POST /posts`, go to the durable log, and every worker learns them.

- Ingest: a batch is validated whole (422 naming the post's index and field; all or nothing),
  appended to the `PostLog` in one transaction, and acknowledged only after the commit.
- Learning: every worker process holds its own model and tails the log: it reads the posts past
  the last id it learned (`Live.position`) and gives them to `Recommender.update` on its model
  thread, the thread that scores, so a recommendation never sees a half-learned post. A worker
  reads at once after it logs a batch itself, and otherwise every `poll_s` (0.1 s): another
  worker's posts are recommendable within `poll_s` plus the time to learn them.
- Start: the model records the last id it learned as `trained_on_["log_position"]`; the worker
  replays the log past it before it serves (`postlog.learn_log`), so `hashrec update --state` compacts the
  log into a model that skips what it holds.
- Forgetting (`window_days`): posts older than the window (by their time, else their arrival)
  are deleted from the log, and the model forgets them where it can (`forget_before`).
"""

# No `from __future__ import annotations`: FastAPI and pydantic must see the routes' and models' types.
import asyncio
import contextlib
import hmac
import logging
import math
import os
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Annotated, Any

from fastapi import HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic_core import PydanticCustomError

from hashrec.data import Post, parse_time
from hashrec.errors import ConfigError, HashrecError
from hashrec.models.base import Recommender
from hashrec.postlog import PostLog, learn_rows, log_position, parse_duration, rising

log = logging.getLogger("hashrec.live")
TOKEN_ENV = "HASHREC_INGEST_TOKEN"
DAY_S = 86400.0
FORGET_EVERY_S = 10.0  # how often a worker deletes what fell out of the window


def read_token(path: str | Path | None) -> str | None:
    """The ingest token from `path` (its first line) or else from $HASHREC_INGEST_TOKEN; None: ingest is off.

    Never from the command line, where any user of the machine can read it (ps, /proc).
    """
    if path is not None:
        try:
            token = Path(path).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(
                f"--ingest-token-file {path}: cannot read it ({exc}); write the token on its first line"
            ) from exc
        if not token:
            raise ConfigError(f"--ingest-token-file {path} is empty; write the token on its first line")
        return token
    return os.environ.get(TOKEN_ENV, "").strip() or None


def _non_blank(value: str) -> str:
    if not re.search(r"\S", value):
        raise PydanticCustomError("blank", "empty or only white space")
    return value


def _time(value: Any) -> float | None:
    """A post's time as POSIX seconds: epoch seconds or ISO 8601, as the data readers take it."""
    if value is None:
        return None
    try:
        return parse_time(value, "time")
    except HashrecError as exc:
        raise PydanticCustomError("time", str(exc)) from None


def post_models(max_text_chars: int, max_posts: int) -> type[BaseModel]:
    """The `POST /posts` body, with this server's limits in its schema."""
    Text = Annotated[str, Field(min_length=1, max_length=max_text_chars), AfterValidator(_non_blank)]
    Tag = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_non_blank)]

    class PostIn(BaseModel):
        model_config = ConfigDict(strict=True, extra="forbid")
        text: Text  # type: ignore[valid-type]
        hashtags: list[Tag] = Field(
            ...,
            min_length=1,
            description="a post teaches only through its "  # type: ignore[valid-type]
            "hashtags: at least one",
        )
        time: Annotated[float | None, BeforeValidator(_time)] = Field(
            None, description="when it was posted: epoch seconds or ISO 8601 (no zone: UTC); absent: arrival"
        )
        user: str | None = Field(None, description="its author's id")

        def post(self) -> Post:
            return Post(self.text, tuple(dict.fromkeys(self.hashtags)), self.time, self.user)

    class PostsRequest(BaseModel):
        model_config = ConfigDict(strict=True, extra="forbid")
        posts: list[PostIn] = Field(..., min_length=1, max_length=max_posts)

    return PostsRequest


class Live:
    """One worker's side of the live server: its model learns the log, in order, on the model thread.

    `on_model(fn)` runs `fn()` on the thread that scores and returns its result (the server's
    `Scorer.run`): learning and scoring never overlap.
    """

    def __init__(
        self,
        model: Recommender,
        postlog: PostLog,
        on_model: Callable[[Callable[[], Any]], Awaitable[Any]],
        window_days: float | None = None,
        poll_s: float = 0.1,
    ) -> None:
        if not model.learns_online:
            raise ConfigError(
                f"--state: the {model.name} model cannot learn after training; serve a model that "
                "learns online (popularity, nb, knn, hknn, stream)"
            )
        if window_days is not None and not (window_days > 0 and math.isfinite(window_days)):
            raise ConfigError(f"--window-days must be a positive number of days, got {window_days}")
        self.model, self.log, self.on_model = model, postlog, on_model
        self.window_s = None if window_days is None else window_days * DAY_S
        self.poll_s = poll_s
        self._wake = asyncio.Event()  # loop-free since Python 3.10: made here, awaited in the server's loop
        self._forgot_at = 0.0

    @property
    def position(self) -> int:
        """The id of the last logged post the model learned."""
        return log_position(self.model)

    async def ingest(self, posts: list[Post]) -> int:
        """Log the posts (one transaction, committed on return) and wake this worker's tail; the last id."""
        last = await asyncio.get_running_loop().run_in_executor(None, self.log.append, posts, time.time())
        self._wake.set()
        return last

    async def tail(self) -> None:
        """Learn new logged posts until cancelled: at once after this worker logs, else every `poll_s`."""
        loop = asyncio.get_running_loop()
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_s)
            self._wake.clear()
            try:
                rows = await loop.run_in_executor(None, self.log.read_after, self.position)
                if rows:
                    await self.on_model(partial(learn_rows, self.model, rows))
                if self.window_s is not None and time.monotonic() - self._forgot_at > FORGET_EVERY_S:
                    await self.forget()
            except Exception:  # a bad moment (disk full, a model bug) must not stop learning for good
                log.exception("learning from the post log failed; trying again")
                await asyncio.sleep(1.0)

    @contextlib.asynccontextmanager
    async def learning(self, app: Any) -> AsyncIterator[None]:
        """The app's lifespan: the tail runs while the server serves."""
        task = asyncio.get_running_loop().create_task(self.tail())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            self.log.close()

    async def forget(self) -> None:
        """Delete logged posts older than the window, and make the model forget them where it can."""
        self._forgot_at = time.monotonic()
        span = await asyncio.get_running_loop().run_in_executor(None, self.log.span)
        if span is None:
            return
        before = span[1] - self.window_s
        await asyncio.get_running_loop().run_in_executor(None, self.log.forget_before, before)
        if hasattr(self.model, "forget_before"):
            await self.on_model(lambda: self.model.forget_before(before))

    def stats(self) -> dict[str, Any]:
        """What the page and /model show: the log, how far this worker learned, the model's index size."""
        return {
            "log_posts": self.log.count(),
            "log_last_id": self.log.last_id(),
            "learned_up_to": self.position,
            "index_posts": index_size(self.model),
            "window_days": None if self.window_s is None else self.window_s / DAY_S,
        }


def index_size(model: Recommender) -> int:
    """Posts the model holds in memory: a kNN's remembered posts, else the posts it learned from."""
    rows = getattr(model, "train_tags_", None)
    if rows is not None:
        return int(rows.shape[0])
    return int(model.trained_on_.get("n_train", 0)) + int(model.trained_on_.get("n_updates", 0))


def check_bearer(header: str | None, token: str) -> None:
    """401 without a bearer token, 403 with a wrong one (compared in constant time)."""
    scheme, _, given = (header or "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        raise HTTPException(
            401, "send the ingest token as 'Authorization: Bearer <token>'", headers={"WWW-Authenticate": "Bearer"}
        )
    if not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise HTTPException(403, "wrong ingest token")


class Accepted(BaseModel):
    accepted: int = Field(description="posts logged, durably, before this answer")
    last_id: int = Field(description="the log id of the batch's last post")


class Trend(BaseModel):
    hashtag: str
    count: int = Field(description="uses in the window")
    expected: float = Field(description="uses expected from the 24 windows before it")
    score: float = Field(description="(count - expected) / sqrt(max(expected, 1)): how far above its usual rate")


class Trending(BaseModel):
    window: str
    hashtags: list[Trend]


def add_routes(app: Any, live: Live, token: str | None, max_text_chars: int, max_posts: int) -> None:
    """`POST /posts` (only with an ingest token) and `GET /trending` on `app`, served by this worker's `live`."""
    PostsRequest = post_models(max_text_chars, max_posts)
    if token is not None:

        @app.post(
            "/posts",
            response_model=Accepted,
            status_code=201,
            summary=f"Learn from up to {max_posts} published posts (ingest token required)",
            openapi_extra={
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": PostsRequest.model_json_schema(ref_template="#/components/schemas/{model}")
                        }
                    },
                }
            },
            responses={
                401: {"description": "no bearer token"},
                403: {"description": "wrong token"},
                422: {
                    "description": "a bad post: the detail names its index and field; nothing of the batch is logged"
                },
            },
        )
        async def posts(request: Request) -> Accepted:
            # The token first, the body after: a client without the token learns nothing about the schema
            check_bearer(request.headers.get("authorization"), token)
            try:
                req = PostsRequest.model_validate_json(await request.body())
            except ValidationError as exc:
                raise RequestValidationError([dict(e, loc=("body", *e["loc"])) for e in exc.errors()]) from None
            batch = [p.post() for p in req.posts]
            return Accepted(accepted=len(batch), last_id=await live.ingest(batch))

    @app.get("/trending", response_model=Trending, summary="Hashtags rising in the window, by post time")
    def trending(
        window: Annotated[str, Query(description="90s, 30m, 1h, 7d")] = "1h",
        k: Annotated[int, Query(ge=1, le=100)] = 20,
    ) -> Trending:
        return Trending(window=window, hashtags=[Trend(**r) for r in rising(live.log, parse_duration(window), k)])
