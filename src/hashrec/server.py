"""The HTTP service: hashtag recommendations as JSON, and a compose-box page at `/`.

`create_app(model)` loads a saved model once and answers

- `POST /recommend`        `{"text", "k", "explain"}` -> `{"text", "hashtags": [{"hashtag", "score"}], "triggers"?}`
- `POST /recommend/batch`  `{"texts": [...], "k"}`    -> `{"results": [...]}` (at most `max_batch` posts)
- `GET  /model`            name, training data, label count, saved metrics, hyperparameters, limits
- `GET  /health`           `{"status": "ok"}`
- `GET  /docs`             the OpenAPI page; `/openapi.json` the schema

Scores are the model's own (`Recommender._scores`, higher is better): probabilities for some models,
log-probabilities or unbounded values for others, so the page formats them rather than the API
rescaling them. Bad input is a 4xx, never a 5xx: schema violations (empty or blank text, text over
`max_text_chars`, k outside 1..max_k, wrong types, unknown fields, malformed JSON) are 422 with
FastAPI's `{"detail": [{"loc", "msg", ...}]}`; a body over `max_body_bytes` is 413, refused from its
Content-Length before reading and otherwise as soon as the bytes read pass the limit; a
`HashrecError` (e.g. `explain` on a model without attention) is 422 with `{"detail": message}`;
a body that is not UTF-8 is FastAPI's 400. Anything else is a bug: 500 with `{"detail"}`, logged.

The scoring endpoints are `async`; `Scorer` runs the model on one thread of its own, so scoring
never blocks the event loop, and scores the posts of requests that arrive meanwhile in the same
call (micro-batching). `hashrec serve --workers N` runs N processes,
each with its own copy of the model.
"""
# No `from __future__ import annotations`: FastAPI must see the per-app request classes, not their names.
import asyncio
import contextlib
import gc
import itertools
import logging
import multiprocessing
import multiprocessing.connection
import re
import signal
import socket
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Annotated, Any, Awaitable, Callable, Iterator

import uvicorn
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, create_model
from pydantic_core import PydanticCustomError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hashrec import __version__, api
from hashrec.config import check
from hashrec.errors import HashrecError
from hashrec.models.base import Recommender

STATIC = Path(__file__).with_name("static")
log = logging.getLogger("hashrec.server")
# Strict: "5" is not a k and 1 is not a text; forbid: a misspelt field ("top_k") is an error, not ignored.
STRICT = ConfigDict(strict=True, extra="forbid")
NON_BLANK = r"\S"  # Python's re, as the validator below; the schema carries it for fuzzers and clients


def _not_blank(text: str) -> str:
    if not re.search(NON_BLANK, text):
        raise PydanticCustomError("blank_text", "text is empty or only white space; write a post")
    return text


class Hashtag(BaseModel):
    hashtag: str
    score: float = Field(description="the model's score, higher is better; its scale depends on the model")


class Trigger(BaseModel):
    word: str
    weight: float = Field(description="attention weight of the word")


class Recommendation(BaseModel):
    text: str
    hashtags: list[Hashtag]
    triggers: list[Trigger] | None = Field(None, description="only with explain=true")


class BatchRecommendation(BaseModel):
    results: list[Recommendation]


class Limits(BaseModel):
    max_k: int
    max_batch: int
    max_text_chars: int
    max_body_bytes: int


class ModelInfo(BaseModel):
    name: str
    labels: int = Field(description="how many hashtags the model knows")
    supports_explain: bool
    trained_on: dict[str, Any]
    metrics: dict[str, Any] = Field(description="the metrics it was saved with (dev F1@k)")
    config: dict[str, Any]
    limits: Limits
    hashrec_version: str


class Health(BaseModel):
    status: str


def _request_models(limits: Limits) -> tuple[type[BaseModel], type[BaseModel]]:
    """The two request bodies, with this app's limits in their schema (so /docs and fuzzers see them)."""
    text = Annotated[str, Field(min_length=1, max_length=limits.max_text_chars,
                                json_schema_extra={"pattern": NON_BLANK}), AfterValidator(_not_blank)]
    k = Annotated[int, Field(ge=1, le=limits.max_k, description="how many hashtags to return")]
    single = create_model("RecommendRequest", __config__=STRICT, text=(text, ...), k=(k, 5),
                          explain=(bool, Field(False, description="also return trigger words; models "
                                               "with attention only (see GET /model), else 422")))
    batch = create_model("BatchRequest", __config__=STRICT, k=(k, 5),
                         texts=(list[text], Field(..., min_length=1, max_length=limits.max_batch)))
    return single, batch


DETAIL = {"application/json": {"schema": {"type": "object", "properties": {"detail": {}}, "required": ["detail"]}}}
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "body is not text (not UTF-8), so not JSON at all", "content": DETAIL},
    413: {"description": "request body larger than max_body_bytes (plain text, from Starlette's guard)",
          "content": {"text/plain": {"schema": {"type": "string"}}}},
    422: {"description": "invalid request, or a model error (HashrecError) with its message", "content": DETAIL}}


def _internal(exc: Exception) -> str:
    return f"internal error ({type(exc).__name__}); see the server log"


@dataclass
class _Job:
    """The posts of one request, waiting to be scored, and where their answer goes."""

    texts: list[str]
    k: int
    answer: asyncio.Future


class Scorer:
    """Scores the posts of concurrent requests together, on one model thread.

    Endpoints are `async`: a request puts its posts in a queue and awaits their answer, so no
    thread is spent per request. Whenever the model thread is idle, what is queued goes to it in
    one model call (micro-batching); requests that arrive meanwhile wait for the next call.

    A call waits, at most `gather_s` (0: never), until as many requests are queued as were active
    around the last call (those it answered and those queued when it ended): clients that send
    again right after an answer (a compose box as one types, a load test's clients) then share
    one call instead of splitting into a lone post's call and the rest's. A call has a large fixed
    cost (a lone weibo post costs about what seven do in a call of 15): at 32 clients and 2 workers
    the server spent a quarter less CPU per answer (docs/PERFORMANCE-serve.md, ninth section). A
    first request, or a lone client's, is scored at once.

    One thread because a recommender is not documented as thread-safe (torch modules, the lazily
    loaded segmenter), and because 32 request threads taking turns at a lock cost more CPU than
    the model (docs/PERFORMANCE-serve.md). Batching changes scores only by float rounding; ties
    may order differently because a batch ranks its largest k and cuts.
    """

    def __init__(self, model: Recommender, torch_threads: int | None = None, gather_s: float = 0.002) -> None:
        self.model, self.gather_s = model, gather_s
        # torch's thread count is per thread once a thread has computed: set it in the model thread
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="hashrec-model", initializer=_torch_threads,
                                          initargs=(torch_threads,))
        self._queue: list[_Job] = []
        self._draining: asyncio.Task | None = None
        self._expected = 0  # requests active around the last call: the next one waits for as many
        self._gathered: asyncio.Future | None = None  # set once they are queued

    def call(self, texts: list[str], k: int, explain: bool = False) -> list[dict[str, Any]]:
        """`api.recommend(model, texts, k, explain)` on the model thread, from outside an event loop."""
        return self._thread.submit(api.recommend, self.model, texts, k=k, explain=explain).result()

    async def recommend(self, texts: list[str], k: int, explain: bool = False) -> list[dict[str, Any]]:
        """`api.recommend(model, texts, k, explain)`, batched with the other requests of this moment."""
        loop = asyncio.get_running_loop()
        if explain:  # rare and possibly refused (no attention): alone, so it cannot fail others
            return await loop.run_in_executor(self._thread, partial(api.recommend, self.model, texts, k=k,
                                                                     explain=True))
        job = _Job(texts, k, loop.create_future())
        self._queue.append(job)
        if self._gathered is not None and len(self._queue) >= self._expected and not self._gathered.done():
            self._gathered.set_result(None)
        if self._draining is None:
            self._draining = loop.create_task(self._drain())
        return await job.answer

    async def _drain(self) -> None:
        """Score the queue, one model call per round, until it is empty."""
        loop = asyncio.get_running_loop()
        try:
            while self._queue:
                if self.gather_s > 0 and len(self._queue) < self._expected:
                    self._gathered = loop.create_future()
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(self._gathered, self.gather_s)
                    self._gathered = None
                jobs, self._queue = self._queue, []
                texts = [t for j in jobs for t in j.texts]
                try:
                    results = await loop.run_in_executor(
                        self._thread, partial(api.recommend, self.model, texts, k=max(j.k for j in jobs)))
                except Exception as exc:  # every request of the batch gets the error
                    for j in jobs:
                        if not j.answer.done():  # done: the client went away
                            j.answer.set_exception(exc)
                    continue
                finally:
                    self._expected = len(jobs) + len(self._queue)
                start = 0
                for j in jobs:
                    if not j.answer.done():
                        j.answer.set_result([dict(r, hashtags=r["hashtags"][:j.k])
                                             for r in results[start:start + len(j.texts)]])
                    start += len(j.texts)
        finally:
            self._draining = None


class FastRecommend:
    """ASGI middleware: answers a valid `POST /recommend` itself, past FastAPI's routing.

    FastAPI's routing, dependency solving and response-model layers cost about half of the
    server's CPU per single-post request (docs/PERFORMANCE-serve.md), and single posts are what
    a compose box sends. This answers them with the same request model (`request_model`),
    the same scoring (`answer`) and the same response model and JSON writer as the route.
    What it does not answer, it passes on to FastAPI unchanged, body included: any request
    that fails validation, a scoring error, a body that is not declared JSON, a body longer
    than `max_body_bytes` (read no further: FastAPI's guard answers 413). So every error
    answer is FastAPI's own, and the route still documents the endpoint at /docs.
    """

    def __init__(self, app: ASGIApp, request_model: type[BaseModel],
                 answer: Callable[[Any], Awaitable[dict[str, Any]]], max_body_bytes: int) -> None:
        self.app, self.request_model, self.answer = app, request_model, answer
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != "/recommend" \
                or not _answerable(scope, self.max_body_bytes):
            return await self.app(scope, receive, send)
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if len(body) > self.max_body_bytes:  # FastAPI's body-size guard answers the 413
                return await self.app(scope, _replay(body, receive, bool(message.get("more_body"))), send)
            if not message.get("more_body"):
                break
        try:
            req = self.request_model.model_validate_json(body)
            out = Recommendation.model_validate(await self.answer(req)).model_dump_json(exclude_none=True).encode()
        except Exception:  # FastAPI answers it, with its 4xx or the route's logged 500
            return await self.app(scope, _replay(body, receive), send)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(len(out)).encode()), (b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": out})


def _answerable(scope: Scope, max_bytes: int) -> bool:
    """Headers `FastRecommend` may answer: a body FastAPI reads as JSON without a subtype check (no
    Content-Type, or application/json) whose declared Content-Length, if any, is at most `max_bytes`."""
    for name, value in scope["headers"]:
        if name == b"content-type" and value.split(b";", 1)[0].strip().lower() != b"application/json":
            return False
        if name == b"content-length" and not (value.isdigit() and int(value) <= max_bytes):
            return False
    return True


def _replay(body: bytes, receive: Receive, more: bool = False) -> Receive:
    """A `receive` that gives `body` again (the start of the body if `more`), then what the client sends next."""
    sent = False

    async def again() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": more}
    return again


class _Served(FastAPI):
    """FastAPI with `FastRecommend` around its whole middleware stack (`fast_recommend`: its arguments).

    Outside, not inside: each of FastAPI's own layers (error pages, telemetry, two body-size
    guards) wraps `receive` and `send` of every request, 19 µs of event-loop CPU per request in
    all (benchmarks/asgi_layers.py; docs/PERFORMANCE-serve.md, fifth session).
    """

    fast_recommend: dict[str, Any]

    def build_middleware_stack(self) -> ASGIApp:
        return FastRecommend(super().build_middleware_stack(), **self.fast_recommend)


def create_app(model: Recommender | str | Path, *, max_batch: int = 64, max_text_chars: int = 2000,
               max_k: int = 100, max_body_bytes: int | None = None, torch_threads: int | None = None,
               gather_ms: float = 2.0) -> FastAPI:
    """The FastAPI application serving `model` (a fitted Recommender or a saved model directory).

    `max_body_bytes` defaults to the size of the largest valid batch however it is escaped
    (12 bytes per character: an astral character as two JSON `\\uXXXX` escapes). `torch_threads`:
    torch's threads for scoring (`hashrec serve`: 1); None leaves torch's setting alone. `gather_ms`:
    how long a model call may wait for the clients of the last one (`Scorer`; 0: never).
    """
    check(gather_ms >= 0, f"gather_ms (--gather-ms) must be >= 0 (0: never wait), got {gather_ms}")
    rec = api.load(model) if isinstance(model, (str, Path)) else model
    limits = Limits(max_k=max_k, max_batch=max_batch, max_text_chars=max_text_chars,
                    max_body_bytes=max_body_bytes or 12 * max_text_chars * max_batch + 4096)
    RecommendRequest, BatchRequest = _request_models(limits)
    scorer = Scorer(rec, torch_threads, gather_ms / 1000)
    scorer.call(["武汉加油 warm up"], k=1)  # loads the segmenter's dictionary now, not on the first request
    # The model and its vocabulary are hundreds of thousands of long-lived objects: frozen,
    # the collector stops walking them in every full collection (tens of ms each, the tail latency)
    gc.collect()
    gc.freeze()

    app = _Served(title="hashrec", version=__version__, max_body_size=limits.max_body_bytes,
                  description=f"Hashtag recommendations from the `{rec.name}` model. The page is at `/`.")

    @app.exception_handler(HashrecError)
    def _hashrec_error(request: Request, exc: HashrecError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.exception_handler(Exception)
    def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Last resort outside the scorer: JSON too, though Starlette then closes the connection.
        return JSONResponse({"detail": _internal(exc)}, status_code=500)

    async def scored(texts: list[str], k: int, explain: bool = False) -> list[dict[str, Any]]:
        """The scorer's answer; a bug in the model is a 500 JSON answer, logged.

        Raised as an HTTPException rather than left to Starlette's last-resort handler, which
        answers 500 too but then drops the client's keep-alive connection.
        """
        try:
            return await scorer.recommend(texts, k, explain)
        except HashrecError:
            raise
        except Exception as exc:
            log.exception("scoring failed")
            raise HTTPException(500, _internal(exc)) from exc

    @app.post("/recommend", response_model=Recommendation, response_model_exclude_none=True,
              responses=ERRORS, summary="Hashtags for one post")
    async def recommend(req: RecommendRequest) -> Any:  # type: ignore[valid-type]
        return (await scored([req.text], req.k, req.explain))[0]

    async def fast(req: Any) -> dict[str, Any]:  # unwrapped: a failure goes on to the route, which logs it once
        return (await scorer.recommend([req.text], req.k, req.explain))[0]

    app.fast_recommend = dict(request_model=RecommendRequest, answer=fast, max_body_bytes=limits.max_body_bytes)

    @app.post("/recommend/batch", response_model=BatchRecommendation, response_model_exclude_none=True,
              responses=ERRORS, summary=f"Hashtags for up to {max_batch} posts")
    async def recommend_batch(req: BatchRequest) -> Any:  # type: ignore[valid-type]
        return {"results": await scored(req.texts, req.k)}

    @app.get("/model", response_model=ModelInfo, summary="What is being served")
    def model_info() -> ModelInfo:
        return ModelInfo(name=rec.name, labels=len(rec.labels_), supports_explain=rec.supports_explain,
                         trained_on=rec.trained_on_, metrics=rec.metrics_, config=rec.get_params(),
                         limits=limits, hashrec_version=__version__)

    @app.get("/health", response_model=Health)
    def health() -> Health:
        return Health(status="ok")

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def _torch_threads(n: int | None) -> None:
    """torch computes on `n` threads in this thread (and by default in threads started later).

    `hashrec serve --workers N` (N > 1) scores on one per worker: the workers' intra-op threads
    would only compete with each other and the event loops for the cores (with one, acnn served 3x
    the requests per second at 32 clients, docs/PERFORMANCE-serve.md). A single worker keeps
    torch's default (one per core): its event loop and model thread share one GIL, so the model's
    second thread has a core to itself (7% more answers per second, measured).
    """
    if n is not None and "torch" in sys.modules:  # only models that need torch have imported it
        sys.modules["torch"].set_num_threads(n)


def _listener(host: str, port: int) -> socket.socket:
    """A socket listening on host:port, or a HashrecError that says to choose another port."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise HashrecError(f"cannot listen on {host}:{port}: {exc.strerror}; choose another --port") from exc
    sock.listen(2048)
    return sock


class _Handed(uvicorn.Server):
    """uvicorn serving the connections `serve` accepted and handed over `channel` (SCM_RIGHTS), no listener of its own."""

    def __init__(self, config: uvicorn.Config, channel: socket.socket) -> None:
        super().__init__(config)
        self.channel = channel
        self._connecting: set[asyncio.Task] = set()  # the loop keeps only weak references to tasks

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=[])
        # the protocol uvicorn's own listener makes (uvicorn.Server.startup)
        self._protocol = partial(self.config.http_protocol_class, config=self.config, server_state=self.server_state,
                                 app_state=self.lifespan.state)
        self.channel.setblocking(False)
        asyncio.get_running_loop().add_reader(self.channel, self._take)

    def _take(self) -> None:
        """Serve the connections waiting in the channel; the parent gone (end of channel): stop."""
        loop = asyncio.get_running_loop()
        try:
            data, fds, _, _ = socket.recv_fds(self.channel, 64, 64)
        except BlockingIOError:
            return
        if not data:
            loop.remove_reader(self.channel)
            self.should_exit = True
            return
        for fd in fds:
            task = loop.create_task(loop.connect_accepted_socket(self._protocol, socket.socket(fileno=fd)))
            self._connecting.add(task)
            task.add_done_callback(self._connected)

    def _connected(self, task: asyncio.Task) -> None:
        self._connecting.discard(task)
        if not task.cancelled() and task.exception() is not None:  # e.g. the client left at once
            log.warning("a connection could not be served: %r", task.exception())


def _worker(model: str, channel: socket.socket, access_log: bool, limits: dict[str, float]) -> None:
    """One `--workers` process: its own model, serving the connections handed to it over `channel`."""
    app = create_app(model, torch_threads=1, **limits)
    _Handed(uvicorn.Config(app, access_log=access_log), channel).run()


def serve(model: str | Path, *, host: str = "127.0.0.1", port: int = 8000, workers: int = 1,
          access_log: bool = True, **limits: float) -> None:
    """Run the service with uvicorn until interrupted; loopback only unless `host` says otherwise.

    `workers` > 1 runs that many processes, each with its own copy of the model; this process
    accepts the connections and hands them to the workers in turn (a Unix socket per worker,
    SCM_RIGHTS), so each worker holds an equal share. Letting the kernel choose balances them
    worse: uvicorn's own workers share one socket, and the first awake took most of a burst of
    connections (26, 30 of 32); one socket per worker (SO_REUSEPORT) spreads them by a hash of
    the address (17/15, 17/15, 15/17, 12/20 in four runs; docs/PERFORMANCE-serve.md). SIGTERM or Ctrl+C stops
    them all; if one dies, the others are stopped and serve() raises.
    """
    if workers == 1:
        app = create_app(model, **limits)  # torch's own thread count: the second core is the model's
        uvicorn.run(app, host=host, port=port, access_log=access_log)
        return
    if not hasattr(socket, "send_fds"):
        raise HashrecError("--workers above 1 hands connections over Unix sockets, which this system "
                           "lacks; run one worker")
    api.load(model)  # a bad model directory fails here, with its message, not in every worker
    listener = _listener(host, port)  # so does a port taken by another program
    spawn = multiprocessing.get_context("spawn")
    channels = [socket.socketpair() for _ in range(workers)]
    procs = [spawn.Process(target=_worker, args=(str(model), theirs, access_log, limits), name=f"hashrec-serve-{i}")
             for i, (_, theirs) in enumerate(channels)]
    stopping = False

    def stop(*_: Any) -> None:
        nonlocal stopping
        stopping = True
        for p in procs:
            if p.is_alive():
                p.terminate()  # SIGTERM: uvicorn finishes the requests under way

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        for p in procs:
            p.start()
        for _, theirs in channels:
            theirs.close()
        print(f"hashrec serve: {workers} workers on http://{host}:{port} (Press CTRL+C to quit)", file=sys.stderr)
        _hand_out(listener, [ours for ours, _ in channels], [p.sentinel for p in procs])  # until a worker ends
        crashed = not stopping
    except KeyboardInterrupt:  # Ctrl+C reached the workers as well
        crashed = False
    finally:
        stop()
        for p in procs:
            p.join()
        listener.close()
        for ours, _ in channels:
            ours.close()
        signal.signal(signal.SIGTERM, previous)
    if crashed:
        raise HashrecError(f"a server worker exited (code {[p.exitcode for p in procs]}); see the log above")


def _hand_out(listener: socket.socket, channels: list[socket.socket], sentinels: list[int]) -> None:
    """Accept connections and send each to the next worker's channel in turn, until a worker ends."""
    for turn in itertools.count():
        if multiprocessing.connection.wait([listener, *sentinels]) != [listener]:
            return  # a worker's sentinel: it has ended
        try:
            conn, _ = listener.accept()
        except OSError:  # e.g. the client gave up before it was accepted
            continue
        with conn:  # closes this process's copy; the worker has its own once sent
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # answers leave at once, as from asyncio's listeners
            try:
                socket.send_fds(channels[turn % len(channels)], [b"c"], [conn.fileno()])
            except OSError:  # the worker is gone: wait() reports its sentinel next
                continue


@contextlib.contextmanager
def running(app: FastAPI, host: str = "127.0.0.1") -> Iterator[str]:
    """Serve `app` from a background thread on a free port; yields its base URL (tests, notebooks)."""
    sock = socket.socket()
    sock.bind((host, 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        while not server.started:
            if not thread.is_alive():
                raise HashrecError(f"the server on {host} did not start; see its log above")
            time.sleep(0.02)
        yield f"http://{host}:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
