"""CPU per request of FastAPI's own middleware layers, for a handler inside vs around them (not a test).

`hashrec serve` answers a valid single-post POST /recommend in `FastRecommend`, an ASGI handler
that reads the body and sends the answer itself. This measures what FastAPI's middleware stack
(error pages, exception telemetry, the two body-size guards of `max_body_size`) adds to every such
request when the handler sits inside the stack, against the handler wrapping the stack (how
`hashrec.server.fastpath` places it). A handler that does nothing else is called
in-process, no network and no model, alternating the two placements; CPU microseconds per request.

    .venv/bin/python benchmarks/asgi_layers.py --requests 20000 --rounds 5
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from fastapi import FastAPI

BODY = '{"text": "武汉加油 #抗击疫情#", "k": 5}'.encode()
SCOPE = {
    "type": "http",
    "asgi": {"version": "3.0"},
    "http_version": "1.1",
    "method": "POST",
    "path": "/recommend",
    "raw_path": b"/recommend",
    "query_string": b"",
    "root_path": "",
    "scheme": "http",
    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())],
    "client": ("127.0.0.1", 1),
    "server": ("127.0.0.1", 8000),
}


class Handler:
    """What the fast path does at the ASGI level: read the whole body, send a head and a body."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        body, more = b"", True
        while more:
            message = await receive()
            body, more = body + message.get("body", b""), message.get("more_body", False)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"{}"})


def app(outside: bool) -> Any:
    api = FastAPI(max_body_size=1 << 20)
    if outside:
        return Handler(api.build_middleware_stack())
    api.add_middleware(Handler)
    return api


async def receive() -> dict:
    return {"type": "http.request", "body": BODY, "more_body": False}


async def send(message: dict) -> None:
    pass


async def cpu_us(asgi: Any, n: int) -> float:
    start = time.process_time()
    for _ in range(n):
        await asgi(dict(SCOPE), receive, send)
    return (time.process_time() - start) / n * 1e6


async def main(requests: int, rounds: int) -> None:
    apps = {"inside FastAPI's stack": app(False), "around it": app(True)}
    for asgi in apps.values():
        await cpu_us(asgi, 1000)  # warm-up
    for _ in range(rounds):
        row = [f"{name} {await cpu_us(asgi, requests):.1f} us" for name, asgi in apps.items()]
        print("  ".join(row), flush=True)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, default=20000, help="requests per placement per round")
    p.add_argument("--rounds", type=int, default=5)
    a = p.parse_args()
    asyncio.run(main(a.requests, a.rounds))
