"""The model caller of the HTTP service: the posts of concurrent requests scored together, on one model thread."""

import asyncio
import contextlib
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any

from hashrec import api
from hashrec.models.base import Recommender


@dataclass
class _Job:
    """The posts of one request, waiting to be scored, and where their answer goes."""

    texts: list[str]
    k: int
    min_confidence: float | None
    answer: asyncio.Future

    def cut(self, result: dict[str, Any]) -> dict[str, Any]:
        """This request's answer from a call's: its k best hashtags, those below its threshold left out."""
        hashtags = result["hashtags"][: self.k]
        if self.min_confidence is not None:
            hashtags = [h for h in hashtags if h["confidence"] >= self.min_confidence]
        return dict(result, hashtags=hashtags)


class Batcher:
    """Scores the posts of concurrent requests together, on one model thread.

    Endpoints are `async`: a request puts its posts in a queue and awaits their answer, so no
    thread is spent per request. Whenever the model thread is idle, what is queued goes to it in
    one model call (micro-batching); requests that arrive meanwhile wait for the next call.

    A call waits, at most `gather_s` (0: never), until as many requests are queued as were active
    around the last call (those it answered and those queued when it ended): clients that send
    again right after an answer (a compose box as one types, a load test's clients) then share
    one call instead of splitting into a lone post's call and the rest's. A call has a large fixed
    cost (a lone post costs about what seven do in a call of 15), so the server spends less CPU per
    answer (docs/PERFORMANCE-serve.md). A
    first request, or a lone client's, is scored at once.

    One thread because a recommender is not documented as thread-safe (torch modules, the lazily
    loaded segmenter), and because 32 request threads taking turns at a lock cost more CPU than
    the model (docs/PERFORMANCE-serve.md). Batching changes scores only by float rounding; ties
    may order differently because a batch ranks its largest k and cuts.
    """

    def __init__(self, model: Recommender, torch_threads: int | None = None, gather_s: float = 0.002) -> None:
        self.model, self.gather_s = model, gather_s
        # torch's thread count is per thread once a thread has computed: set it in the model thread
        self._thread = ThreadPoolExecutor(
            1, thread_name_prefix="hashrec-model", initializer=_torch_threads, initargs=(torch_threads,)
        )
        self._queue: list[_Job] = []
        self._draining: asyncio.Task | None = None
        self._expected = 0  # requests active around the last call: the next one waits for as many
        self._gathered: asyncio.Future | None = None  # set once they are queued

    def call(self, texts: list[str], k: int, explain: bool = False) -> list[dict[str, Any]]:
        """`api.recommend(model, texts, k, explain)` on the model thread, from outside an event loop."""
        return self._thread.submit(api.recommend, self.model, texts, k=k, explain=explain).result()

    async def run(self, fn: Callable[[], Any]) -> Any:
        """`fn()` on the model thread, between two model calls: the live server's learning (server.live)."""
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn)

    async def recommend(
        self, texts: list[str], k: int, explain: bool = False, min_confidence: float | None = None
    ) -> list[dict[str, Any]]:
        """`api.recommend(model, texts, k, explain, min_confidence)`, batched with the other requests of this moment."""
        loop = asyncio.get_running_loop()
        if explain:  # rare and possibly refused (no attention): alone, so it cannot fail others
            return await loop.run_in_executor(
                self._thread,
                partial(api.recommend, self.model, texts, k=k, explain=True, min_confidence=min_confidence),
            )
        if min_confidence is not None:  # refused here (no calibration, out of range), not in the shared call
            self.model.check_min_confidence(min_confidence)
        job = _Job(texts, k, min_confidence, loop.create_future())
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
                        self._thread, partial(api.recommend, self.model, texts, k=max(j.k for j in jobs))
                    )
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
                        j.answer.set_result([j.cut(r) for r in results[start : start + len(j.texts)]])
                    start += len(j.texts)
        finally:
            self._draining = None


def _torch_threads(n: int | None) -> None:
    """torch computes on `n` threads in this thread (and by default in threads started later).

    `hashrec serve --workers N` (N > 1) scores on one per worker: the workers' intra-op threads
    would only compete with each other and the event loops for the cores (docs/PERFORMANCE-serve.md).
    A single worker keeps torch's default (one per core): its event loop and model thread share one
    GIL, so the model's second thread has a core to itself.
    """
    if n is not None and "torch" in sys.modules:  # only models that need torch have imported it
        sys.modules["torch"].set_num_threads(n)
