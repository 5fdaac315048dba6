"""`serve`: the HTTP service under uvicorn, in one process or several workers that this process feeds."""

import asyncio
import itertools
import logging
import multiprocessing
import multiprocessing.connection
import signal
import socket
import sys
from functools import partial
from pathlib import Path
from typing import Any

import uvicorn

from hashrec import api
from hashrec.errors import HashrecError
from hashrec.postlog import PostLog
from hashrec.server.app import create_app

log = logging.getLogger("hashrec.server")


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
    """uvicorn serving the connections that `serve` accepted and handed over `channel` (SCM_RIGHTS).

    It has no listener of its own.
    """

    def __init__(self, config: uvicorn.Config, channel: socket.socket) -> None:
        super().__init__(config)
        self.channel = channel
        self._connecting: set[asyncio.Task] = set()  # the loop keeps only weak references to tasks

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=[])
        # the protocol uvicorn's own listener makes (uvicorn.Server.startup)
        self._protocol = partial(
            self.config.http_protocol_class,
            config=self.config,
            server_state=self.server_state,
            app_state=self.lifespan.state,
        )
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


def _worker(model: str, channel: socket.socket, access_log: bool, limits: dict[str, Any]) -> None:
    """One `--workers` process: its own model, serving the connections handed to it over `channel`."""
    app = create_app(model, torch_threads=1, **limits)
    _Handed(uvicorn.Config(app, access_log=access_log), channel).run()


def serve(
    model: str | Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    access_log: bool = True,
    **limits: Any,
) -> None:
    """Run the service with uvicorn until interrupted; loopback only unless `host` says otherwise.

    `workers` > 1 runs that many processes, each with its own copy of the model; this process
    accepts the connections and hands them to the workers in turn (a Unix socket per worker,
    SCM_RIGHTS), so each worker holds an equal share. Letting the kernel choose balances them
    worse: uvicorn's own workers share one socket, and the first awake took most of a burst of
    connections; one socket per worker (SO_REUSEPORT) spreads them by a hash of the address,
    unevenly (docs/PERFORMANCE-serve.md). SIGTERM or Ctrl+C stops
    them all; if one dies, the others are stopped and serve() raises. `limits` go to `create_app`
    (with `state`, each worker learns the post log: hashrec.server.live).
    """
    if workers == 1:
        app = create_app(model, **limits)  # torch's own thread count: the second core is the model's
        uvicorn.run(app, host=host, port=port, access_log=access_log)
        return
    if not hasattr(socket, "send_fds"):
        raise HashrecError(
            "--workers above 1 hands connections over Unix sockets, which this system lacks; run one worker"
        )
    loaded = api.load(model)  # a bad model directory fails here, with its message, not in every worker
    if limits.get("min_confidence") is not None:  # so does a threshold the model cannot apply
        loaded.check_min_confidence(limits["min_confidence"])
    if limits.get("state") is not None:  # and so does a bad --state; the workers then open a ready log
        PostLog(limits["state"]).close()
    listener = _listener(host, port)  # so does a port taken by another program
    spawn = multiprocessing.get_context("spawn")
    channels = [socket.socketpair() for _ in range(workers)]
    procs = [
        spawn.Process(target=_worker, args=(str(model), theirs, access_log, limits), name=f"hashrec-serve-{i}")
        for i, (_, theirs) in enumerate(channels)
    ]
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
            conn.setsockopt(
                socket.IPPROTO_TCP, socket.TCP_NODELAY, 1
            )  # answers leave at once, as from asyncio's listeners
            try:
                socket.send_fds(channels[turn % len(channels)], [b"c"], [conn.fileno()])
            except OSError:  # the worker is gone: wait() reports its sentinel next
                continue
