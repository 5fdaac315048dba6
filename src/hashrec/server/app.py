"""The FastAPI application of the HTTP service: `create_app` and its routes."""

# No `from __future__ import annotations`: FastAPI must see the per-app request classes, not their names.
import gc
import json
import logging
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

from hashrec import __version__, api
from hashrec.config import check
from hashrec.errors import HashrecError
from hashrec.models.base import Recommender
from hashrec.postlog import PostLog, Synchronous, learn_log
from hashrec.server.batching import Batcher
from hashrec.server.fastpath import Served
from hashrec.server.live import Live, add_routes
from hashrec.server.schemas import (
    ERRORS,
    BatchRecommendation,
    Health,
    Limits,
    ModelInfo,
    Recommendation,
    internal_error,
    request_models,
)

STATIC = Path(__file__).parent.with_name("static")
log = logging.getLogger("hashrec.server")


def create_app(
    model: Recommender | str | Path,
    *,
    max_batch: int = 64,
    max_text_chars: int = 2000,
    max_k: int = 100,
    max_body_bytes: int | None = None,
    torch_threads: int | None = None,
    gather_ms: float = 2.0,
    state: str | Path | None = None,
    ingest_token: str | None = None,
    window_days: float | None = None,
    synchronous: Synchronous = "full",
    min_confidence: float | None = None,
) -> FastAPI:
    """The FastAPI application serving `model` (a fitted Recommender or a saved model directory).

    With `state` (a directory), the server learns (hashrec.server.live): it replays the post log
    kept there into the model before it serves, learns what is logged later within `Live.poll_s`,
    and answers `GET /trending`; `ingest_token` turns `POST /posts` on (None: off), `window_days`
    forgets older posts, and `synchronous` is the log's durability (hashrec.postlog).

    `max_body_bytes` defaults to the size of the largest valid batch however it is escaped
    (12 bytes per character: an astral character as two JSON `\\uXXXX` escapes). `torch_threads`:
    torch's threads for scoring (`hashrec serve`: 1); None leaves torch's setting alone. `gather_ms`:
    how long a model call may wait for the clients of the last one (`Batcher`; 0: never).
    `min_confidence`: the threshold of a request that names none (None: every request gets k hashtags).
    """
    check(gather_ms >= 0, f"gather_ms (--gather-ms) must be >= 0 (0: never wait), got {gather_ms}")
    rec = api.load(model) if isinstance(model, (str, Path)) else model
    if min_confidence is not None:
        rec.check_min_confidence(min_confidence)
    limits = Limits(
        max_k=max_k,
        max_batch=max_batch,
        max_text_chars=max_text_chars,
        max_body_bytes=max_body_bytes or 12 * max_text_chars * max_batch + 4096,
    )
    RecommendRequest, BatchRequest = request_models(limits)
    batcher = Batcher(rec, torch_threads, gather_ms / 1000)
    live = None
    if state is not None:
        live = Live(rec, PostLog(state, synchronous), batcher.run, window_days)
        replayed = learn_log(rec, live.log)
        log.info("replayed %d logged posts into the model, up to log id %d", replayed, live.position)
    batcher.call(["武汉加油 warm up"], k=1)  # loads the segmenter's dictionary now, not on the first request
    # The model and its vocabulary are hundreds of thousands of long-lived objects: frozen,
    # the collector stops walking them in every full collection (tens of ms each, the tail latency)
    gc.collect()
    gc.freeze()

    app = Served(
        title="hashrec",
        version=__version__,
        max_body_size=limits.max_body_bytes,
        docs_url=None,
        redoc_url=None,  # /docs below serves Swagger UI's files itself; ReDoc would need a CDN
        lifespan=live.learning if live else None,
        description=f"Hashtag recommendations from the `{rec.name}` model. The page is at `/`.",
    )

    @app.exception_handler(HashrecError)
    def _hashrec_error(request: Request, exc: HashrecError) -> Response:
        return _ascii_json({"detail": str(exc)}, 422)

    @app.exception_handler(RequestValidationError)
    def _invalid(request: Request, exc: RequestValidationError) -> Response:
        return _ascii_json({"detail": jsonable_encoder(exc.errors())}, 422)

    @app.exception_handler(Exception)
    def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Last resort outside the batcher: JSON too, though Starlette then closes the connection.
        return JSONResponse({"detail": internal_error(exc)}, status_code=500)

    def threshold(req: Any) -> float | None:
        return min_confidence if req.min_confidence is None else req.min_confidence

    async def scored(
        texts: list[str], k: int, explain: bool = False, threshold: float | None = None
    ) -> list[dict[str, Any]]:
        """The batcher's answer; a bug in the model is a 500 JSON answer, logged.

        Raised as an HTTPException rather than left to Starlette's last-resort handler, which
        answers 500 too but then drops the client's keep-alive connection.
        """
        try:
            return await batcher.recommend(texts, k, explain, threshold)
        except HashrecError:
            raise
        except Exception as exc:
            log.exception("scoring failed")
            raise HTTPException(500, internal_error(exc)) from exc

    # exclude_unset: "triggers" only when explained, "confidence" always (null for an uncalibrated model)
    @app.post(
        "/recommend",
        response_model=Recommendation,
        response_model_exclude_unset=True,
        responses=ERRORS,
        summary="Hashtags for one post",
    )
    async def recommend(req: RecommendRequest) -> Any:  # type: ignore[valid-type]
        return (await scored([req.text], req.k, req.explain, threshold(req)))[0]

    async def fast(req: Any) -> dict[str, Any]:  # unwrapped: a failure goes on to the route, which logs it once
        return (await batcher.recommend([req.text], req.k, req.explain, threshold(req)))[0]

    app.fast_recommend = dict(request_model=RecommendRequest, answer=fast, max_body_bytes=limits.max_body_bytes)

    @app.post(
        "/recommend/batch",
        response_model=BatchRecommendation,
        response_model_exclude_unset=True,
        responses=ERRORS,
        summary=f"Hashtags for up to {max_batch} posts",
    )
    async def recommend_batch(req: BatchRequest) -> Any:  # type: ignore[valid-type]
        return {"results": await scored(req.texts, req.k, threshold=threshold(req))}

    calibration = {k: v for k, v in rec.calibration_.to_json().items() if k != "ranks"} if rec.calibration_ else None

    @app.get("/model", response_model=ModelInfo, summary="What is being served")
    def model_info() -> ModelInfo:
        return ModelInfo(
            name=rec.name,
            labels=len(rec.labels_),
            supports_explain=rec.supports_explain,
            trained_on=rec.trained_on_,
            metrics=rec.metrics_,
            config=rec.get_params(),
            limits=limits,
            calibration=calibration,
            min_confidence=min_confidence,
            hashrec_version=__version__,
            live=live.stats() if live else None,
        )

    if live is not None:
        add_routes(app, live, ingest_token, max_text_chars, max_batch)

    @app.get("/health", response_model=Health)
    def health() -> Health:
        return Health(status="ok")

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> FileResponse:
        return FileResponse(STATIC / "favicon.svg", media_type="image/svg+xml")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        # FastAPI's default page loads Swagger UI from a CDN: blank without internet. Served from the package.
        return get_swagger_ui_html(
            openapi_url=app.openapi_url,
            title="hashrec API",
            swagger_js_url="/docs-static/swagger-ui-bundle.js",
            swagger_css_url="/docs-static/swagger-ui.css",
            swagger_favicon_url="/favicon.ico",
        )

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.mount("/docs-static", StaticFiles(directory=swagger_ui_path), name="docs-static")
    return app


def _ascii_json(content: Any, status: int) -> Response:
    """JSON with non-ASCII escaped: an error may echo the request's text, and a lone surrogate
    in it (valid in a JSON escape) cannot be written as UTF-8 (JSONResponse raised: a 500)."""
    return Response(json.dumps(content), status_code=status, media_type="application/json")
