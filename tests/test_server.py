"""The HTTP API, served for real by uvicorn on a loopback port, with a model trained on 2,000 real posts.

Documented answers checked here: bad input is 422 (`{"detail": [{"loc", "msg"}]}` from validation,
`{"detail": message}` from a HashrecError), a body over max_body_bytes is 413 whether or not it
declares its length, and `explain` on a model without attention is 422 naming the models that can.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import select
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from pydantic import BaseModel, ConfigDict
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from hashrec import api
from hashrec.cli import main
from hashrec.errors import HashrecError
from hashrec.models import MODELS, create
from hashrec.server import Batcher, FastRecommend, create_app, running, serve
from hashrec.tokens import tokenize

MODEL = "nb" if "nb" in MODELS else "popularity"  # nb reads the text; popularity is the fallback
LIMITS = {"max_batch": 8, "max_text_chars": 300, "max_k": 20}
POSTS = ["钟南山院士说疫情拐点还没有到来", "武汉加油，致敬医护人员", "Stay home and stay safe"]


@pytest.fixture(scope="module")
def model(small_split):
    return api.train(MODEL, small_split)


@pytest.fixture(scope="module")
def url(model):
    with running(create_app(model, **LIMITS)) as base:
        yield base


@pytest.fixture(scope="module")
def client(url):
    with httpx.Client(base_url=url, timeout=30) as c:
        yield c


def test_health(client):
    assert client.get("/health").json() == {"status": "ok"}


def test_page_docs_and_schema_are_served(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'for="post"' in page.text and client.get("/static/app.js").status_code == 200
    assert client.get("/docs").status_code == 200
    assert {"/recommend", "/recommend/batch", "/model", "/health"} <= set(client.get("/openapi.json").json()["paths"])


def test_model_describes_what_is_served(client, model):
    info = client.get("/model").json()
    assert info["name"] == MODEL and info["labels"] == len(model.labels_)
    assert info["metrics"] == model.metrics_ and info["metrics"]["dev"]["F1@1"] > 0
    assert info["trained_on"]["n_train"] == 2000 and info["config"] == model.get_params()
    assert info["limits"]["max_batch"] == 8 and info["supports_explain"] is False


@pytest.mark.parametrize("text", POSTS)
def test_recommend_gives_the_models_ranking(client, model, text):
    r = client.post("/recommend", json={"text": text, "k": 4})
    assert r.status_code == 200
    body = r.json()
    assert body["text"] == text and "triggers" not in body
    assert [(h["hashtag"], h["score"]) for h in body["hashtags"]] == model.recommend(text, k=4)[0]


@pytest.mark.parametrize("body", [{"text": POSTS[0]}, {"text": POSTS[2], "k": 7, "explain": False}])
def test_fast_path_answers_as_fastapis_route_does(client, body):
    # application/json takes FastRecommend's path; a +json type, which FastAPI reads as JSON too, the route's
    raw = json.dumps(body, ensure_ascii=False).encode()
    fast, route = (
        client.post("/recommend", content=raw, headers={"content-type": kind})
        for kind in ("application/json; charset=utf-8", "application/vnd.hashrec+json")
    )
    assert fast.status_code == route.status_code == 200
    assert fast.content == route.content and fast.headers["content-type"] == route.headers["content-type"]


def test_fast_path_passes_what_it_does_not_answer_to_fastapi_body_and_all():
    class Req(BaseModel):
        model_config = ConfigDict(strict=True, extra="forbid")
        text: str
        k: int = 5
        explain: bool = False

    async def answer(req: Req) -> dict:
        if req.explain:
            raise ValueError("no attention")
        return {"text": req.text, "hashtags": [{"hashtag": "武汉", "score": 0.5, "confidence": 0.25}][: req.k]}

    async def call(body: bytes, content_type: bytes = b"application/json") -> tuple[list, list]:
        passed: list[bytes] = []
        sent: list[dict] = []

        async def inner(scope, receive, send):  # stands for FastAPI: reads the whole body
            body, more = b"", True
            while more:
                message = await receive()
                body, more = body + message["body"], message["more_body"]
            passed.append(body)

        chunks = [body[:5], body[5:]]  # a body in two messages

        async def receive():
            return {"type": "http.request", "body": chunks.pop(0), "more_body": bool(chunks)}

        async def send(message):
            sent.append(message)

        scope = {"type": "http", "method": "POST", "path": "/recommend", "headers": [(b"content-type", content_type)]}
        await FastRecommend(inner, request_model=Req, answer=answer, max_body_bytes=40)(scope, receive, send)
        return passed, sent

    passed, sent = asyncio.run(call('{"text": "武汉加油", "k": 1}'.encode()))
    assert not passed and sent[0]["status"] == 200
    assert json.loads(sent[1]["body"]) == {
        "text": "武汉加油",
        "hashtags": [{"hashtag": "武汉", "score": 0.5, "confidence": 0.25}],
    }
    for body, kind in (
        (b'{"text": 1}', b"application/json"),
        (b'{"text": "x", "explain": true}', b"application/json"),
        (b'{"text": "x"', b"application/json"),
        (b'{"text": "x"}', b"text/plain"),
        (b'{"text": "' + b"x" * 40 + b'"}', b"application/json"),
    ):  # too long: FastAPI's 413
        passed, sent = asyncio.run(call(body, kind))
        assert passed == [body] and not sent, (body, kind)


def test_batch_equals_single_requests(client):
    batch = client.post("/recommend/batch", json={"texts": POSTS, "k": 3}).json()["results"]
    singles = [client.post("/recommend", json={"text": t, "k": 3}).json() for t in POSTS]
    assert batch == singles


def test_longest_allowed_text_and_largest_k_are_accepted(client):
    r = client.post("/recommend", json={"text": "武" * 300, "k": 20})
    assert r.status_code == 200 and len(r.json()["hashtags"]) == 20


BAD = {
    "empty text": ({"text": ""}, "text"),
    "white space only": ({"text": " \n\t\u3000"}, "text"),
    "text too long": ({"text": "a" * 301}, "text"),
    "k zero": ({"text": "x", "k": 0}, "k"),
    "k over max": ({"text": "x", "k": 21}, "k"),
    "k as string": ({"text": "x", "k": "5"}, "k"),
    "k fractional": ({"text": "x", "k": 1.5}, "k"),
    "k boolean": ({"text": "x", "k": True}, "k"),
    "text a number": ({"text": 5}, "text"),
    "text missing": ({"k": 3}, "text"),
    "unknown field": ({"text": "x", "top_k": 3}, "top_k"),
    "explain not bool": ({"text": "x", "explain": "yes"}, "explain"),
}


@pytest.mark.parametrize("body, field", BAD.values(), ids=BAD.keys())
def test_bad_single_request_is_422_naming_the_field(client, body, field):
    r = client.post("/recommend", json=body)
    assert r.status_code == 422
    assert field in [e["loc"][-1] for e in r.json()["detail"]]


BAD_BATCH = {
    "no texts": {"texts": []},
    "too many texts": {"texts": ["x"] * 9},
    "a blank text": {"texts": ["ok", "  "]},
    "texts a string": {"texts": "武汉加油"},
}


@pytest.mark.parametrize("body", BAD_BATCH.values(), ids=BAD_BATCH.keys())
def test_bad_batch_is_422(client, body):
    r = client.post("/recommend/batch", json=body)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][:2] == ["body", "texts"]


@pytest.mark.parametrize("raw", [b'{"text": "x",', b"not json", b"[1, 2]", b'"text"'])
def test_malformed_or_non_object_json_is_422(client, raw):
    r = client.post("/recommend", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["detail"]


def test_explain_without_attention_is_422_with_the_fix(client):
    r = client.post("/recommend", json={"text": "武汉加油", "explain": True})
    assert r.status_code == 422 and "no attention to explain" in r.json()["detail"]


def _raw_post(url: str, headers: str, chunk: bytes = b"", max_bytes: int = 0) -> tuple[bytes, int]:
    """POST over a bare socket, sending `chunk` until the server answers or `max_bytes` went out.

    httpx would push the whole body before reading the answer; this shows when the server answers.
    """
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=20) as s:
        s.sendall(f"POST /recommend HTTP/1.1\r\nHost: {host}\r\n{headers}\r\n".encode())
        sent = 0
        while sent < max_bytes and not select.select([s], [], [], 0)[0]:
            s.sendall(chunk)
            sent += len(chunk)
        return s.recv(100), sent


TINY_ACNN = dict(dim=16, n_maps=16, local_dim=16, hidden=32, epochs=1, embeddings="random")  # seconds to fit


@pytest.fixture(scope="module")
def acnn(weibo_sample):
    return create("acnn", **TINY_ACNN).fit(weibo_sample["train"][:2000])


@pytest.mark.slow  # fitting even a tiny acnn takes 15-50 s on the shared machine
def test_explain_with_attention_gives_trigger_words_of_the_post(acnn):
    text = "钟南山院士说疫情拐点还没有到来"
    with running(create_app(acnn)) as base:
        info = httpx.get(f"{base}/model").json()
        body = httpx.post(f"{base}/recommend", json={"text": text, "k": 3, "explain": True}).json()
    assert info["supports_explain"] is True and len(body["hashtags"]) == 3
    assert body["triggers"] and all(t["word"] in tokenize(text) and t["weight"] > 0 for t in body["triggers"])


def test_oversized_declared_body_is_413_before_any_byte_of_it(url):
    reply, _ = _raw_post(url, "Content-Type: application/json\r\nContent-Length: 1000000000\r\n")
    assert reply.startswith(b"HTTP/1.1 413")


def test_oversized_streamed_body_is_413_once_past_the_limit(url):
    # No Content-Length: the guard counts bytes as they are read and answers without the rest.
    chunk = b"%x\r\n%s\r\n" % (65536, b" " * 65536)
    reply, sent = _raw_post(
        url, "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n", chunk, max_bytes=1 << 26
    )
    assert reply.startswith(b"HTTP/1.1 413") and sent < 1 << 25


def test_oversized_body_is_413_for_httpx_too(client):
    limit = client.get("/model").json()["limits"]["max_body_bytes"]
    r = client.post("/recommend", content=b" " * (limit + 1), headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json() == {"detail": f"request body larger than {limit} bytes"}


@pytest.mark.parametrize("path", ["/recommend", "/recommend/batch"])
def test_lone_surrogate_is_refused_with_422_not_500(client, path):
    body = '{"text": "\\ud800abc"}' if path == "/recommend" else '{"texts": ["\\ud800abc"]}'
    r = client.post(path, content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["detail"]


def test_lone_surrogate_reaching_the_model_from_python_is_answered(model):
    assert len(api.recommend(model, ["\ud800abc 武汉加油"], k=2)[0]["hashtags"]) == 2


def test_docs_page_loads_nothing_from_another_host(client):
    page = client.get("/docs").text
    assets = re.findall(r'(?:src|href)="([^"]+)"|url: *[\'"]([^\'"]+)', page)
    urls = [u for pair in assets for u in pair if u]
    assert urls and not [u for u in urls if "://" in u or u.startswith("//")], urls
    assert all(client.get(u).status_code == 200 for u in urls if u.startswith("/docs-static/"))
    assert "swagger-ui-bundle.js" in page


def test_favicon_is_served(client):
    r = client.get("/favicon.ico")
    assert r.status_code == 200 and r.content.startswith(b"<svg")


def test_concurrent_requests_all_succeed_and_agree(url, model):
    # 32 clients at once: the batcher batches their posts (with different k) into shared model calls.
    ks = range(1, 6)
    expected = {(t, k): api.recommend(model, t, k=k)[0]["hashtags"] for t in POSTS for k in ks}

    def worker(i: int) -> list[tuple[int, tuple[str, int], list]]:
        with httpx.Client(base_url=url, timeout=60) as c:
            out = []
            for j in range(4):
                text, k = POSTS[(i + j) % len(POSTS)], ks[i % len(ks)]
                r = c.post("/recommend", json={"text": text, "k": k})
                out.append((r.status_code, (text, k), r.json().get("hashtags")))
            return out

    with ThreadPoolExecutor(32) as pool:
        results = [x for batch in pool.map(worker, range(32)) for x in batch]
    assert len(results) == 128
    for status, key, hashtags in results:
        assert status == 200 and hashtags == expected[key]


def test_a_call_waits_for_the_clients_of_the_last_one_and_no_longer(model, monkeypatch):
    calls = []
    recommend = api.recommend
    monkeypatch.setattr(api, "recommend", lambda m, texts, **kw: calls.append(len(texts)) or recommend(m, texts, **kw))
    batcher = Batcher(model, gather_s=0.3)
    batcher.call(POSTS[:1], k=1)  # warm: loads the segmenter; not queued

    async def timed(*requests: tuple[str, float]) -> float:
        async def one(text: str, after: float) -> None:
            await asyncio.sleep(after)
            await batcher.recommend([text], 1)

        start = time.perf_counter()
        await asyncio.gather(*(one(text, after) for text, after in requests))
        return time.perf_counter() - start

    async def scenario() -> list[float]:
        return [
            await timed((POSTS[0], 0)),  # the first request: scored at once
            await timed(*((p, 0) for p in POSTS)),  # three at once: one call
            await timed((POSTS[0], 0), (POSTS[1], 0.05), (POSTS[2], 0.05)),  # waits for the other two
            await timed((POSTS[0], 0)),
        ]  # waits for two that never come: gather_s, then alone

    first, together, gathered, alone = asyncio.run(scenario())
    assert calls == [1, 1, 3, 3, 1]
    assert first < 0.25 and together < 0.25 and gathered < 0.25 and alone >= 0.3


def test_gather_ms_below_zero_is_refused(model):
    with pytest.raises(HashrecError, match="gather_ms"):
        create_app(model, gather_ms=-1)


def test_unexpected_error_is_500_json_and_the_server_lives_on(small_split):
    broken = api.train("popularity", small_split)
    with running(create_app(broken)) as base, httpx.Client(base_url=base, timeout=30) as c:
        broken.prior_ = None  # a damaged model: its learned state is gone
        r = c.post("/recommend", json={"text": "武汉加油", "k": 5})
        assert r.status_code == 500 and "internal error" in r.json()["detail"]
        assert c.get("/health").status_code == 200


@pytest.mark.parametrize("workers", [1, 2])
def test_hashrec_serve_command_serves_a_saved_model_on_loopback(model, tmp_path, workers):
    model.save(tmp_path / "m")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [
        sys.executable,
        "-m",
        "hashrec",
        "serve",
        "--model",
        str(tmp_path / "m"),
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    server = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    try:
        said, started = "", 0
        for line in server.stderr:  # where it listens, then each worker's startup (it listens right after)
            said += line
            started += "Application startup complete" in line
            if started == workers and f"http://127.0.0.1:{port}" in said:
                break
        assert f"http://127.0.0.1:{port}" in said, said
        children = [int(c) for c in Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()]
        assert workers == 1 or len(children) > workers  # the workers and multiprocessing's resource tracker
        pids = children if workers > 1 else [server.pid]
        before = {p: _sockets(p) for p in pids}
        with contextlib.ExitStack() as stack:
            clients = [
                stack.enter_context(httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)) for _ in range(6)
            ]
            for c in clients:  # six open connections: the workers hold them three and three
                r = c.post("/recommend", json={"text": "武汉加油", "k": 2})
                assert r.status_code == 200 and len(r.json()["hashtags"]) == 2
            held = sorted(_sockets(p) - before[p] for p in pids)
        assert held[-workers:] == [6 // workers] * workers, held
        if workers > 1:  # the port is this server's alone: a second one is refused, not let in to share it
            with pytest.raises(HashrecError, match="choose another --port"):
                serve(tmp_path / "m", port=port, workers=2)
    finally:
        server.terminate()  # SIGTERM: every worker stops with the server
        server.wait(timeout=30)
    deadline = time.monotonic() + 10  # the resource tracker leaves once the server has gone
    while any(Path(f"/proc/{c}").exists() for c in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [c for c in children if Path(f"/proc/{c}").exists()]


def _sockets(pid: int) -> int:
    """How many sockets process `pid` has open."""
    return sum(os.readlink(fd).startswith("socket:") for fd in Path(f"/proc/{pid}/fd").iterdir())


def test_workers_on_a_system_without_fd_passing_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delattr(socket, "send_fds")
    with pytest.raises(HashrecError, match="run one worker"):
        serve(tmp_path / "never-read", workers=2)


def test_hashrec_serve_refuses_a_missing_model(tmp_path, capsys):
    assert main(["serve", "--model", str(tmp_path / "none")]) == 1
    assert "not a hashrec model directory" in capsys.readouterr().err


# ---------------------------------------------------------------- fuzzing from the app's own schema


@pytest.mark.parametrize("mode", list(GenerationMode))
def test_fuzzing_from_the_openapi_schema_finds_no_server_error(url, mode):
    """Requests generated from /openapi.json, fitting it or not: never a 5xx, always a documented answer."""
    checks = [not_a_server_error, status_code_conformance, response_schema_conformance]
    for result in schemathesis.openapi.from_url(f"{url}/openapi.json").get_all_operations():
        operation = result.ok()
        if mode is GenerationMode.NEGATIVE and operation.method.upper() == "GET":
            continue  # no parameters: nothing to get wrong

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=30, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def call(case):
            case.call_and_validate(checks=checks)

        call()
