"""The ASGI fast path of the HTTP service: a valid `POST /recommend` answered past FastAPI's routing."""

import json
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hashrec.server.schemas import Recommendation


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

    def __init__(
        self,
        app: ASGIApp,
        request_model: type[BaseModel],
        answer: Callable[[Any], Awaitable[dict[str, Any]]],
        max_body_bytes: int,
    ) -> None:
        self.app, self.request_model, self.answer = app, request_model, answer
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or scope["path"] != "/recommend"
            or not _answerable(scope, self.max_body_bytes)
        ):
            return await self.app(scope, receive, _json_413(send, self.max_body_bytes))
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if len(body) > self.max_body_bytes:  # FastAPI's body-size guard answers the 413
                return await self.app(
                    scope, _replay(body, receive, bool(message.get("more_body"))), _json_413(send, self.max_body_bytes)
                )
            if not message.get("more_body"):
                break
        try:
            req = self.request_model.model_validate_json(body)
            out = Recommendation.model_validate(await self.answer(req)).model_dump_json(exclude_unset=True).encode()
        except Exception:  # FastAPI answers it, with its 4xx or the route's logged 500
            return await self.app(scope, _replay(body, receive), send)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", str(len(out)).encode()), (b"content-type", b"application/json")],
            }
        )
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


def _json_413(send: Send, max_bytes: int) -> Send:
    """`send`, with Starlette's plain-text 413 ("Content Too Large") made JSON `{"detail"}` like every other error."""
    body = json.dumps({"detail": f"request body larger than {max_bytes} bytes"}).encode()
    swapping = False

    async def sending(message: Message) -> None:
        nonlocal swapping
        if message["type"] == "http.response.start" and message["status"] == 413:
            swapping = True
            message = {
                **message,
                "headers": [(b"content-length", str(len(body)).encode()), (b"content-type", b"application/json")],
            }
        elif swapping and message["type"] == "http.response.body":
            message = {**message, "body": body}
        await send(message)

    return sending


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


class Served(FastAPI):
    """FastAPI with `FastRecommend` around its whole middleware stack (`fast_recommend`: its arguments).

    Outside, not inside: each of FastAPI's own layers (error pages, telemetry, two body-size
    guards) wraps `receive` and `send` of every request, event-loop CPU that the model thread
    waits for (benchmarks/asgi_layers.py measures it; docs/PERFORMANCE-serve.md).
    """

    fast_recommend: dict[str, Any]

    def build_middleware_stack(self) -> ASGIApp:
        return FastRecommend(super().build_middleware_stack(), **self.fast_recommend)
