"""Load benchmark of `hashrec serve` (not a test): latency and throughput of POST /recommend.

Starts the real server (`hashrec serve`, no access log) on a free loopback port with MODEL, then
for each client count sends single-post requests (real posts from DATA's test split, k=5) from
that many concurrent keep-alive connections, each sending its next request as soon as the last
is answered (a closed loop). Each round stops after --requests answers or --seconds, whichever is
first. Prints, per round: requests, failures (non-200 or connection errors), p50/p99 latency,
throughput, CPU time per answer of the server and of this client, and the 1-minute load average
before and after (the machine is shared); last, one thread's matmul speed before and after the
rounds, the machine's speed that the latencies depend on. The client runs at a higher priority
than the server (--client-nice, as root), so that its reading of an answer does not wait for
the server's workers to leave the cores.

The client is a minimal HTTP/1.1 keep-alive client on asyncio streams (on uvloop where installed),
not httpx: on two cores the client shares the CPU with the server, and httpx's per-request cost
would be measured as server latency.

    .venv/bin/python benchmarks/load_serve.py --model runs/nb --data ../shared/benchmarks/weibo
    .venv/bin/python benchmarks/load_serve.py --model runs/acnn --clients 1 32 --workers 2 --json
    .venv/bin/python benchmarks/load_serve.py --model runs/acnn --clients 32 --workers 2 --rounds 20
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

try:  # the event loop the server runs on, about half the client CPU of asyncio's own
    from uvloop import run as run_loop
except ImportError:  # Windows
    from asyncio import run as run_loop

from hashrec.bench import matmul_peak
from hashrec.data import load_split

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(
    model: Path,
    port: int,
    workers: int,
    log: Path,
    timeout: float = 300,
    extra: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
) -> subprocess.Popen:
    """`hashrec serve` (and `extra` arguments) in a subprocess, returned once it listens and every worker started."""
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
        "--no-access-log",
        *extra,
    ]
    with open(log, "wb") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=env)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"server exited: {log.read_text()[-2000:]}")
        # each worker listens right after its "startup complete" (one after "Uvicorn running on")
        if log.read_text().count("Application startup complete") >= workers:
            time.sleep(0.5)
            return proc
        time.sleep(0.5)
    proc.kill()
    sys.exit(f"server did not start within {timeout:.0f} s; see {log}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` and its descendants (the uvicorn workers), from /proc."""
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            pass  # exited meanwhile
    return total


async def _response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = next(
        int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")
    )
    return status, await reader.readexactly(length)


def request(text: str) -> bytes:
    body = json.dumps({"text": text, "k": 5}, ensure_ascii=False).encode()
    return (
        b"POST /recommend HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )


async def load_round(
    port: int, requests: list[bytes], clients: int, limit: int, seconds: float, server_pid: int | None
) -> tuple[dict, np.ndarray]:
    """`clients` closed-loop connections until `limit` answers or `seconds` pass: a row of figures
    and every answer's latency (ms).

    Besides wall-clock latency it reports the server's CPU time per answer, which a shared,
    loaded machine distorts far less: on two idle cores the server cannot answer faster than
    2 / cpu_ms_per_request per millisecond, and 32 closed-loop clients then wait at least
    32 * cpu_ms_per_request / 2 ms each.
    """
    latencies: list[float] = []
    failures = 0
    sent = 0
    stop = time.perf_counter() + seconds

    async def client() -> None:
        nonlocal failures, sent
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while sent < limit and time.perf_counter() < stop:
                payload = requests[sent % len(requests)]
                sent += 1
                t0 = time.perf_counter()
                try:
                    writer.write(payload)
                    status, _ = await _response(reader)
                except (OSError, asyncio.IncompleteReadError):
                    failures += 1
                    writer.close()
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                    continue
                latencies.append(time.perf_counter() - t0)
                failures += status != 200
        finally:
            writer.close()

    load_before = os.getloadavg()[0]
    cpu = (lambda: cpu_seconds(server_pid)) if server_pid else (lambda: float("nan"))
    t0, cpu0, client0 = time.perf_counter(), cpu(), time.process_time()
    await asyncio.gather(*(client() for _ in range(clients)))
    wall = time.perf_counter() - t0
    server_cpu, client_cpu = cpu() - cpu0, time.process_time() - client0
    ms = np.array(latencies) * 1000
    return {
        "clients": clients,
        "requests": len(latencies),
        "failed": failures,
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
        "throughput_rps": round(len(latencies) / wall, 1),
        "server_cpu_ms_per_req": round(1000 * server_cpu / max(len(latencies), 1), 2),
        "client_cpu_ms_per_req": round(1000 * client_cpu / max(len(latencies), 1), 2),
        "load_before": round(load_before, 2),
        "load_after": round(os.getloadavg()[0], 2),
    }, ms


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--model", type=Path, required=True, help="saved model directory (with --port: a label)")
    p.add_argument(
        "--data",
        type=Path,
        default=ROOT.parent / "shared" / "benchmarks" / "weibo",
        help="split directory whose test posts are sent",
    )
    p.add_argument("--clients", type=int, nargs="+", default=[1, 32], help="concurrent clients per round")
    p.add_argument("--requests", type=int, default=2000, help="answers per round at most")
    p.add_argument("--seconds", type=float, default=30, help="length of a round at most")
    p.add_argument("--warmup", type=int, default=100, help="requests sent before measuring")
    p.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="rounds per client count, on the same server; with more than one, a line on how "
        "many met --target-ms (a noisy machine moves p99 from round to round)",
    )
    p.add_argument("--target-ms", type=float, default=20.0, help="the p99 target that --rounds counts")
    p.add_argument("--workers", type=int, default=1, help="server processes")
    p.add_argument(
        "--client-nice",
        type=int,
        default=-10,
        help="this client's nice value. It shares the cores with the server; at a higher priority "
        "it reads each answer when it arrives, as a client on another machine would, instead of "
        "waiting for a server worker's time slice to end (a delay that is the client's, not the "
        "server's: docs/PERFORMANCE-serve.md, the client priority). 0 keeps the server's priority",
    )
    p.add_argument("--json", action="store_true", help="one JSON object per round")
    p.add_argument("--port", type=int, help="load a server already running on 127.0.0.1:PORT instead")
    p.add_argument("--pid", type=int, help="with --port: the server's process id, for its CPU time")
    a = p.parse_args()

    # Only posts the server accepts (default max_text_chars 2000): the others are 422s by design.
    requests = [
        request(post.text) for post in load_split(a.data, "test")[:5000] if post.text.strip() and len(post.text) <= 2000
    ]
    if a.port:
        run(a, requests, a.port, a.pid)
        return
    port = free_port()
    server = start_server(a.model, port, a.workers, Path(tempfile.mkdtemp()) / "server.log")
    try:
        run(a, requests, port, server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)


def raise_priority(nice: int) -> None:
    """Run this client at `nice` (the server, started before, keeps its own priority)."""
    if nice == 0:
        return
    try:
        os.nice(nice)
    except PermissionError:
        print(
            f"note: no permission for --client-nice {nice} (needs root); the client runs at the server's "
            "priority, and its own wake-ups wait behind the server's workers",
            file=sys.stderr,
        )


def run(a: argparse.Namespace, requests: list[bytes], port: int, pid: int | None) -> None:
    raise_priority(a.client_nice)
    before = matmul_peak(1, seconds=1.0)  # the machine's speed, which the latencies follow most
    run_loop(load_round(port, requests, 4, a.warmup, a.seconds, pid))
    for clients in a.clients:
        p99s, every = [], []
        for _ in range(a.rounds):
            row, ms = run_loop(load_round(port, requests, clients, a.requests, a.seconds, pid))
            row = {"model": a.model.name, "workers": a.workers, **row}
            print(json.dumps(row) if a.json else "  ".join(f"{k} {v}" for k, v in row.items()), flush=True)
            p99s.append(row["p99_ms"])
            every.append(ms)
        if a.rounds > 1:
            print(summary(clients, p99s, np.concatenate(every), a.target_ms), flush=True)
    after = matmul_peak(1, seconds=1.0)
    print(
        json.dumps({"matmul_gflops_before": round(before), "matmul_gflops_after": round(after)})
        if a.json
        else f"machine: one thread's float32 matmul {before:.0f} GFLOP/s before the rounds, {after:.0f} after",
        flush=True,
    )


def summary(clients: int, p99s: list[float], every_ms: np.ndarray, target_ms: float) -> str:
    """One line on the rounds of a client count: how often a round's p99 met the target, its spread,
    and the p99 of all the rounds' answers together (one run's p99, as a longer round would give)."""
    return (
        f"clients {clients}: p99 <= {target_ms:g} ms in {sum(p <= target_ms for p in p99s)} of {len(p99s)} "
        f"rounds; p99 min {min(p99s):.2f}, median {float(np.median(p99s)):.2f}, max {max(p99s):.2f} ms; "
        f"all {len(every_ms)} answers: p50 {np.percentile(every_ms, 50):.2f}, "
        f"p99 {np.percentile(every_ms, 99):.2f} ms"
    )


if __name__ == "__main__":
    main()
