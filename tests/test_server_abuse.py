"""The server under abuse, beyond bad payloads (tests/test_server.py): slow clients, many idle
connections, and memory over a long run of requests. Loopback only; every loop is bounded."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from hashrec import api

POSTS = [
    "钟南山院士说疫情拐点还没有到来",
    "武汉加油，致敬医护人员",
    "Stay home and stay safe",
    "😷" * 50,
    "长文" * 900,
    "mixed 中文 and English #tag",
]


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.fixture(scope="module")
def served(small_split, tmp_path_factory):
    """`hashrec serve` in its own process (so its memory is its own), on a free loopback port."""
    model = tmp_path_factory.mktemp("serve") / "nb"
    api.train("nb", small_split, model)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "hashrec", "serve", "--model", str(model), "--port", str(port), "--no-access-log"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for line in server.stderr:
            if "Uvicorn running on" in line:
                break
        threading.Thread(target=server.stderr.read, daemon=True).start()  # a full pipe would stall it
        yield server.pid, f"http://127.0.0.1:{port}", port
    finally:
        server.terminate()
        server.wait(timeout=30)


def _hammer(url: str, n: int) -> list[int]:
    def one(i: int) -> int:
        return httpx.post(
            f"{url}/recommend", json={"text": POSTS[i % len(POSTS)] + str(i), "k": 5}, timeout=30
        ).status_code

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, range(n)))


def test_memory_stays_bounded_over_a_long_run(served):
    pid, url, _ = served
    assert set(_hammer(url, 150)) == {200}  # warm-up: allocator pools, tokenizer, caches
    before = _rss_kib(pid)
    assert set(_hammer(url, 600)) == {200}
    growth = _rss_kib(pid) - before
    assert growth < 30 * 1024, f"RSS grew by {growth / 1024:.1f} MiB over 600 requests"


def test_slow_and_idle_clients_do_not_block_others(served):
    _, url, port = served
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(50)]
    slow = socket.create_connection(("127.0.0.1", port))
    try:
        slow.sendall(
            b"POST /recommend HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 40\r\n\r\n{"text": '
        )  # and then nothing more
        for s in idle[:10]:
            s.sendall(b"GET /hea")  # half a request line
        start = time.monotonic()
        r = httpx.post(f"{url}/recommend", json={"text": "武汉加油", "k": 3}, timeout=30)
        assert r.status_code == 200 and len(r.json()["hashtags"]) == 3
        assert time.monotonic() - start < 10
    finally:
        for s in idle + [slow]:
            s.close()
    assert httpx.get(f"{url}/health", timeout=30).status_code == 200
