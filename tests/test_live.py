"""The server that learns (issue 22): POST /posts, the durable log, freshness across workers, /trending, forgetting."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from hashrec import api
from hashrec.cli import main
from hashrec.data import Post
from hashrec.models import create
from hashrec.postlog import PostLog
from hashrec.server import create_app, running

TOKEN = "s3cret-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
DAY = 86400.0


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, weibo_sample):
    """A popularity model (it learns online: counts grow) fitted on 300 real Weibo posts, saved."""
    out = tmp_path_factory.mktemp("live") / "popularity"
    create("popularity").fit(weibo_sample["train"][:300]).save(out)
    return out


def _batch(n: int, tag: str, start: int = 0, time_: float | None = None) -> list[dict]:
    return [
        {"text": f"第{i}条 {tag} 的新闻", "hashtags": [tag], **({} if time_ is None else {"time": time_})}
        for i in range(start, start + n)
    ]


@pytest.fixture
def live(model_dir, tmp_path):
    with (
        running(create_app(model_dir, state=tmp_path / "state", ingest_token=TOKEN)) as base,
        httpx.Client(base_url=base, timeout=30) as client,
    ):
        yield client


def _learned(client: httpx.Client, last_id: int, within_s: float = 5.0) -> dict:
    """/model's live block once the worker learned up to `last_id` (it learns on its own, right after logging)."""
    deadline = time.monotonic() + within_s
    while (info := client.get("/model").json()["live"])["learned_up_to"] < last_id and time.monotonic() < deadline:
        time.sleep(0.02)
    return info


def test_ingest_needs_the_token_and_recommending_does_not(live):
    body = {"posts": _batch(1, "新话题")}
    assert live.post("/posts", json=body).status_code == 401
    assert live.post("/posts", json={"garbage": 1}).status_code == 401  # the token before the body
    assert live.post("/posts", json=body, headers={"Authorization": "Bearer wrong"}).status_code == 403
    assert live.post("/posts", json=body, headers={"Authorization": "Basic " + TOKEN}).status_code == 401
    assert live.post("/recommend", json={"text": "武汉加油"}).status_code == 200
    r = live.post("/posts", json=body, headers=AUTH)
    assert r.status_code == 201 and r.json() == {"accepted": 1, "last_id": 1}


@pytest.mark.parametrize(
    "bad,field",
    [
        ({"text": " ", "hashtags": ["x"]}, "text"),
        ({"text": "ok", "hashtags": []}, "hashtags"),
        ({"text": "ok", "hashtags": ["x"], "time": "yesterday"}, "time"),
        ({"text": "ok", "hashtags": ["x"], "place": "here"}, "place"),
        ({"text": "ok", "hashtags": "x"}, "hashtags"),
    ],
)
def test_a_bad_post_is_422_naming_its_index_and_field_and_nothing_is_logged(live, bad, field):
    r = live.post("/posts", json={"posts": [*_batch(2, "好"), bad]}, headers=AUTH)
    assert r.status_code == 422, r.text
    assert any(e["loc"][:3] == ["body", "posts", 2] and field in e["loc"] for e in r.json()["detail"]), r.json()
    assert live.get("/model").json()["live"]["log_posts"] == 0  # all or nothing


def test_model_and_trending_report_the_log(live):
    live.post("/posts", json={"posts": _batch(5, "新冠疫苗", time_=1584489600)}, headers=AUTH)
    live.post("/posts", json={"posts": _batch(2, "武汉", time_=1584489600 - 3 * 3600)}, headers=AUTH)
    info = _learned(live, 7)
    assert info["log_posts"] == 7 and info["log_last_id"] == 7 and info["index_posts"] == 307
    trends = live.get("/trending", params={"window": "1h", "k": 5}).json()
    assert trends["hashtags"][0] == {"hashtag": "新冠疫苗", "count": 5, "expected": 0.0, "score": 5.0}
    assert [t["hashtag"] for t in trends["hashtags"]] == ["新冠疫苗"]  # 武汉's posts are before the hour
    assert live.get("/trending", params={"window": "soon"}).status_code == 422


def test_without_a_token_there_is_no_ingest(model_dir, tmp_path, monkeypatch):
    monkeypatch.delenv("HASHREC_INGEST_TOKEN", raising=False)
    with running(create_app(model_dir, state=tmp_path / "s")) as base, httpx.Client(base_url=base) as c:
        assert c.post("/posts", json={"posts": _batch(1, "x")}, headers=AUTH).status_code in (404, 405)
        assert c.get("/trending").status_code == 200


def test_window_days_forgets_old_posts(model_dir, tmp_path, monkeypatch):
    monkeypatch.setattr("hashrec.server.live.FORGET_EVERY_S", 0.0)
    app = create_app(model_dir, state=tmp_path / "s", ingest_token=TOKEN, window_days=2)
    with running(app) as base, httpx.Client(base_url=base, timeout=30) as c:
        c.post("/posts", json={"posts": _batch(3, "旧", time_=0.0)}, headers=AUTH)
        c.post("/posts", json={"posts": _batch(2, "新", time_=10 * DAY)}, headers=AUTH)
        deadline = time.monotonic() + 5
        while c.get("/model").json()["live"]["log_posts"] != 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        info = c.get("/model").json()["live"]
    assert info["log_posts"] == 2 and info["window_days"] == 2
    assert [p.text for _, p in PostLog(tmp_path / "s").read_after(0)] == ["第0条 新 的新闻", "第1条 新 的新闻"]


def test_update_folds_the_log_into_a_model_that_a_server_then_skips(model_dir, tmp_path, capsys):
    log = PostLog(tmp_path / "s")
    log.append([Post(f"帖子{i}", ("折叠",)) for i in range(40)], arrival=1.0)
    assert (
        main(["update", "--model", str(model_dir), "--state", str(tmp_path / "s"), "--out", str(tmp_path / "m2")]) == 0
    )
    assert "learned 40 logged posts, up to log id 40" in capsys.readouterr().out
    folded = api.load(tmp_path / "m2")
    assert folded.trained_on_["log_position"] == 40 and folded.recommend("帖子", 1)[0][0][0] == "折叠"
    before = folded.label_counts_.copy()
    with running(create_app(tmp_path / "m2", state=tmp_path / "s")) as base, httpx.Client(base_url=base) as c:
        assert c.get("/model").json()["live"]["learned_up_to"] == 40
    assert (api.load(tmp_path / "m2").label_counts_ == before).all()  # nothing learned twice
    assert (
        main(["update", "--model", str(model_dir), "--state", str(tmp_path / "nowhere"), "--out", str(tmp_path / "m3")])
        == 1
    )
    assert "no post log" in capsys.readouterr().err


# ---------------------------------------------------------------- the real server, in its own processes


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(model: Path, state: Path, workers: int, token_file: Path) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    cmd = [
        sys.executable,
        "-m",
        "hashrec",
        "serve",
        "--model",
        str(model),
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--state",
        str(state),
        "--ingest-token-file",
        str(token_file),
        "--no-access-log",
    ]
    server = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    started = 0
    for line in server.stderr:
        started += "Application startup complete" in line
        if started == workers:
            break
    assert started == workers, f"the server did not start (exit {server.poll()})"
    threading.Thread(target=server.stderr.read, daemon=True).start()  # keep its pipe drained
    return server, f"http://127.0.0.1:{port}"


@pytest.fixture
def token_file(tmp_path):
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n")
    return path


def test_freshness_every_worker_recommends_a_new_hashtag_within_a_second(model_dir, tmp_path, token_file):
    server, base = _start(model_dir, tmp_path / "s", 2, token_file)
    try:
        with httpx.Client(base_url=base, timeout=30) as poster:
            assert poster.post("/posts", json={"posts": _batch(60, "刚刚出现的话题")}, headers=AUTH).status_code == 201
            acked = time.monotonic()
        clients = [httpx.Client(base_url=base, timeout=30) for _ in range(4)]  # connections go to both workers
        seen = {}
        while len(seen) < len(clients) and time.monotonic() - acked < 1.0:
            for i, c in enumerate(clients):
                top = c.post("/recommend", json={"text": "第1条 刚刚出现的话题 的新闻", "k": 1}).json()
                if top["hashtags"][0]["hashtag"] == "刚刚出现的话题":
                    seen.setdefault(i, time.monotonic() - acked)
        for c in clients:
            c.close()
        assert len(seen) == len(clients), f"within 1 s only clients {sorted(seen)} saw it"
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_kill_9_during_ingestion_loses_no_acknowledged_post(model_dir, tmp_path, token_file):
    state = tmp_path / "s"
    server, base = _start(model_dir, state, 1, token_file)
    acked: dict[int, list[dict]] = {}  # last id -> the batch the server acknowledged
    stop = threading.Event()

    def ingest() -> None:
        with httpx.Client(base_url=base, timeout=10) as c:
            for n in range(10**6):
                if stop.is_set():
                    return
                batch = _batch(10, f"标签{n % 7}", start=10 * n)
                try:
                    r = c.post("/posts", json={"posts": batch}, headers=AUTH)
                except httpx.HTTPError:  # the server died under this request: not acknowledged
                    return
                acked[r.json()["last_id"]] = batch

    sender = threading.Thread(target=ingest)
    sender.start()
    deadline = time.monotonic() + 20
    while len(acked) < 30 and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(server.pid, signal.SIGKILL)  # mid-stream: a request is likely under way
    server.wait(timeout=30)
    stop.set()
    sender.join(timeout=30)
    assert len(acked) >= 30
    rows = dict(PostLog(state).read_after(0))
    for last, batch in acked.items():  # every acknowledged post, with its content, under its id
        assert [rows[last - len(batch) + 1 + i].text for i in range(len(batch))] == [p["text"] for p in batch]
        assert all(rows[last - len(batch) + 1 + i].hashtags == tuple(p["hashtags"]) for i, p in enumerate(batch))
    assert len(rows) % 10 == 0 and len(rows) >= 10 * len(acked)  # whole batches only
    server, base = _start(model_dir, state, 1, token_file)  # the restart replays the log
    try:
        live = httpx.get(f"{base}/model", timeout=30).json()["live"]
        assert live["log_posts"] == len(rows) and live["learned_up_to"] == max(rows)
        assert live["index_posts"] == 300 + len(rows)
    finally:
        server.terminate()
        server.wait(timeout=30)
