"""Adaptive micro-batching: concurrent requests share one model call.

Request handlers :meth:`MicroBatcher.infer` their preprocessed images and
await the logits. One worker task takes the oldest waiting request, then
keeps taking requests until the group holds ``max_batch_size`` images or
``max_wait_s`` has passed since it took the first one, and runs the group
as one batch. Requests that queued while the model was busy are taken at
once, so the batch grows with the load and a lone request waits at most
``max_wait_s``. With ``max_batch_size=1`` every request runs alone and
nothing waits: batching is off.

The model runs in a dedicated one-thread executor, so the event loop keeps
accepting and decoding requests while it computes, and model calls never
overlap (two at once would only fight over the same cores).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from dataclasses import dataclass
from typing import Callable

import numpy as np

log = logging.getLogger(__name__)

Infer = Callable[[np.ndarray], np.ndarray]
"""Float32 ``(N, C, H, W)`` model input -> ``(N, num_classes)`` logits."""


class Overloaded(Exception):
    """More requests are waiting than the queue holds; the caller should answer 503."""


class NotRunning(Exception):
    """The batcher was not started, or has been stopped."""


@dataclass
class _Request:
    images: np.ndarray
    future: asyncio.Future[np.ndarray]


class MicroBatcher:
    """Groups concurrent inference requests into batched model calls.

    Args:
        infer: the model; called from one worker thread, never concurrently.
        max_batch_size: most images per model call (>= 1); 1 disables batching.
        max_wait_s: longest the first request of a group waits for company.
        max_queue: most requests waiting; :meth:`infer` raises :class:`Overloaded` beyond it.
        on_batch: called with the size of every model call (for a histogram).
    """

    def __init__(self, infer: Infer, *, max_batch_size: int, max_wait_s: float, max_queue: int = 1024,
                 on_batch: Callable[[int], None] = lambda size: None) -> None:
        if max_batch_size < 1 or max_wait_s < 0 or max_queue < 1:
            raise ValueError("need max_batch_size >= 1, max_wait_s >= 0 and max_queue >= 1")
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s if max_batch_size > 1 else 0.0
        self._infer, self._on_batch, self._max_queue = infer, on_batch, max_queue
        self._queue: asyncio.Queue[_Request] | None = None
        self._carry: _Request | None = None  # taken from the queue but did not fit the last group
        self._forming: list[_Request] = []  # the group waiting for company, not yet handed to the model
        self._active: list[_Request] = []  # the group the model is computing now
        self._worker: asyncio.Task[None] | None = None
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None

    @property
    def running(self) -> bool:
        return self._worker is not None and not self._worker.done()

    @property
    def waiting(self) -> int:
        """Requests accepted and not yet in a model call: queued, carried over, or gathering company.

        A request larger than ``max_batch_size`` counts once per chunk, as ``max_queue`` counts them.
        """
        queued = self._queue.qsize() if self._queue is not None else 0
        return queued + len(self._forming) + (self._carry is not None)

    async def start(self) -> None:
        """Start the worker on the running event loop (idempotent)."""
        if self.running:
            return
        self._queue = asyncio.Queue(maxsize=self._max_queue)
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlestar-infer")
        self._worker = asyncio.get_running_loop().create_task(self._work(), name="mlestar-batcher")

    async def stop(self) -> None:
        """Stop the worker; requests still waiting fail with :class:`NotRunning`."""
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
            self._worker = None
        self._fail_waiting(NotRunning("the server is shutting down"))
        if self._executor is not None:
            self._executor.shutdown(wait=False)
            self._executor = None

    async def run_blocking(self, images: np.ndarray) -> np.ndarray:
        """Run ``images`` on the model thread directly, outside any group (warm-up)."""
        if self._executor is None:
            raise NotRunning("the batcher is not started")
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._infer, images)

    async def infer(self, images: np.ndarray) -> np.ndarray:
        """Logits for float32 ``(N, C, H, W)`` ``images``, computed as part of one or more groups.

        More than ``max_batch_size`` images are split into chunks that queue separately.

        Raises:
            Overloaded: when the queue is full.
            NotRunning: when the batcher is not started.
            Exception: whatever the model raised.
        """
        if self._queue is None or not self.running:
            raise NotRunning("the batcher is not started")
        loop = asyncio.get_running_loop()
        chunks = [images[start:start + self.max_batch_size] for start in range(0, len(images), self.max_batch_size)]
        requests = [_Request(chunk, loop.create_future()) for chunk in chunks]
        if self._queue.qsize() + len(requests) > self._max_queue:
            raise Overloaded(f"{self._queue.qsize()} requests are already waiting (limit {self._max_queue})")
        for request in requests:
            self._queue.put_nowait(request)
        results = await asyncio.gather(*(request.future for request in requests))
        return results[0] if len(results) == 1 else np.concatenate(results)

    async def _work(self) -> None:
        while True:
            await self._collect()
            group, self._forming = self._forming, []
            await self._run(group)

    async def _collect(self) -> None:
        """Gather the next group in ``_forming``: the oldest request plus whatever fits before the deadline.

        The group lives on the batcher, not in a local, so :meth:`stop` can fail
        its requests when it cancels the worker while the group waits for company.
        """
        assert self._queue is not None
        first = self._carry or await self._queue.get()
        self._carry = None
        self._forming, size = [first], len(first.images)
        deadline = asyncio.get_running_loop().time() + self.max_wait_s
        while size < self.max_batch_size:
            nxt = await self._next_before(deadline)
            if nxt is None:
                break
            if size + len(nxt.images) > self.max_batch_size:
                self._carry = nxt  # starts the next group, ahead of anything queued after it
                break
            self._forming.append(nxt)
            size += len(nxt.images)

    async def _next_before(self, deadline: float) -> _Request | None:
        """A queued request at once, else the first to arrive before ``deadline``, else None."""
        assert self._queue is not None
        if not self._queue.empty():
            return self._queue.get_nowait()
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            return None
        try:
            return await asyncio.wait_for(self._queue.get(), remaining)
        except asyncio.TimeoutError:
            return None

    async def _run(self, group: list[_Request]) -> None:
        """One model call for the group; each request gets its rows or the model's exception."""
        live = [request for request in group if not request.future.done()]  # drop abandoned requests
        if not live:
            return
        batch = np.concatenate([request.images for request in live])
        self._on_batch(len(batch))
        # Kept until the call returns, so stop() can fail these requests if it cancels the worker mid-call.
        self._active = live
        try:
            assert self._executor is not None
            logits = await asyncio.get_running_loop().run_in_executor(self._executor, self._infer, batch)
        except Exception as exc:  # noqa: BLE001  (handed to every waiting request, which reports it)
            log.exception("model call on a batch of %d failed", len(batch))
            self._active = []
            self._fail(live, exc)
            return
        self._active = []
        self._deliver(live, np.asarray(logits))

    @staticmethod
    def _deliver(group: list[_Request], logits: np.ndarray) -> None:
        start = 0
        for request in group:
            end = start + len(request.images)
            if not request.future.done():
                request.future.set_result(logits[start:end])
            start = end

    def _fail_waiting(self, exc: Exception) -> None:
        pending = [*self._active, *self._forming, *([self._carry] if self._carry else [])]
        while self._queue is not None and not self._queue.empty():
            pending.append(self._queue.get_nowait())
        self._carry, self._active, self._forming = None, [], []
        self._fail(pending, exc)

    @staticmethod
    def _fail(requests: list[_Request], exc: Exception) -> None:
        for request in requests:
            if not request.future.done():
                request.future.set_exception(exc)
