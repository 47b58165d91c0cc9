"""Micro-batching: grouping, waiting, turning it off, overload, failures, and the same through the app.

The batcher tests drive :class:`MicroBatcher` on an event loop of their own
with a fake model that records each call; the app tests send concurrent
requests through ``httpx.ASGITransport`` to a bundle whose runner is held
on a gate until the requests are where the test wants them, and read the
batch sizes back from ``/metrics``.

No test depends on how fast this machine is: model calls are held by gates
and released on events (a request reached the model, the queue holds them
all, the refused ones were answered), never after a guessed delay. Waits that
must not happen are made an hour long, so a test that waited would hit its
deadline; deadlines only bound a hang.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import threading
import time
from typing import Any, Awaitable, Callable

import httpx
import numpy as np
import pytest
from deploy_helpers import bright, encode, metric, serving

from mlestar.deploy import LoadedBundle, MicroBatcher, NotRunning, Overloaded, ServeSettings, create_app


DEADLINE_S = 60.0  # bounds a hang only; every scenario takes milliseconds
NEVER_S = 3600.0  # a wait no test may sit out: it would end at DEADLINE_S, failing


class Recorder:
    """A fake model: logits are each image's first pixel, repeated; every call's size is recorded.

    With a ``gate``, each call blocks until the gate is set (the deadline only ends a hung test).
    """

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.sizes: list[int] = []
        self.gate = gate

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        self.sizes.append(len(batch))
        if self.gate is not None:
            self.gate.wait(DEADLINE_S)
        return np.repeat(batch[:, :1, 0, 0], 3, axis=1)


def _images(*values: float) -> np.ndarray:
    return np.asarray(values, dtype=np.float32).reshape(-1, 1, 1, 1) * np.ones((1, 1, 2, 2), np.float32)


def _run(test: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(asyncio.wait_for(test(), timeout=DEADLINE_S))


async def _until(condition: Callable[[], bool]) -> None:
    """Yield to the event loop until ``condition()`` holds (``_run``'s deadline bounds the wait)."""
    while not condition():
        await asyncio.sleep(0.005)


async def _started(model: Recorder, **options: Any) -> MicroBatcher:
    batcher = MicroBatcher(model, **{"max_batch_size": 4, "max_wait_s": 0.05, **options})
    await batcher.start()
    return batcher


# --------------------------------------------------------------------------- the batcher


def test_concurrent_requests_share_model_calls_and_get_their_own_rows() -> None:
    model = Recorder()

    async def scenario() -> list[np.ndarray]:
        batcher = await _started(model)
        try:
            return await asyncio.gather(*(batcher.infer(_images(float(i))) for i in range(10)))
        finally:
            await batcher.stop()

    results = _run(scenario)
    assert [float(r[0, 0]) for r in results] == [float(i) for i in range(10)]
    assert sum(model.sizes) == 10 and max(model.sizes) <= 4
    assert len(model.sizes) <= 4  # ten requests, at most four per call: three calls, four with an unlucky split


def test_a_lone_request_waits_for_company_until_max_wait_then_runs_alone() -> None:
    model = Recorder()

    async def scenario() -> float:
        batcher = await _started(model, max_wait_s=0.2)
        try:
            start = time.perf_counter()
            await batcher.infer(_images(1.0))
            return time.perf_counter() - start
        finally:
            await batcher.stop()

    # Only the lower bound is a property of the batcher: the deadline timer never fires early.
    # How late it runs depends on the machine's load; "not forever" is _run's deadline.
    assert _run(scenario) >= 0.19 and model.sizes == [1]


def test_a_full_batch_runs_without_waiting() -> None:
    model = Recorder()

    async def scenario() -> None:
        batcher = await _started(model, max_wait_s=NEVER_S)  # waiting for company would hit the deadline
        try:
            await asyncio.gather(*(batcher.infer(_images(1.0)) for _ in range(4)))
        finally:
            await batcher.stop()

    _run(scenario)
    assert model.sizes == [4]


def test_max_batch_size_one_turns_batching_off() -> None:
    model = Recorder()

    async def scenario() -> None:
        batcher = await _started(model, max_batch_size=1, max_wait_s=NEVER_S)
        try:
            await asyncio.gather(*(batcher.infer(_images(float(i))) for i in range(6)))
        finally:
            await batcher.stop()

    _run(scenario)  # finishing at all shows the hour-long wait is ignored: nothing waits for company
    assert model.sizes == [1] * 6


def test_a_request_larger_than_the_batch_is_split_and_reassembled_in_order() -> None:
    model = Recorder()

    async def scenario() -> np.ndarray:
        batcher = await _started(model)
        try:
            return await batcher.infer(_images(*range(10)))
        finally:
            await batcher.stop()

    result = _run(scenario)
    assert result[:, 0].tolist() == list(range(10)) and model.sizes == [4, 4, 2]


def test_a_full_queue_refuses_with_overloaded() -> None:
    gate = threading.Event()
    model = Recorder(gate=gate)

    async def scenario() -> None:
        batcher = await _started(model, max_batch_size=1, max_queue=2)
        try:
            running = asyncio.ensure_future(batcher.infer(_images(0.0)))
            await _until(lambda: bool(model.sizes))  # the worker holds the first request in the model
            queued = [asyncio.ensure_future(batcher.infer(_images(float(i)))) for i in (1, 2)]
            await asyncio.sleep(0)
            with pytest.raises(Overloaded, match="limit 2"):
                await batcher.infer(_images(3.0))
            gate.set()
            assert [float(r[0, 0]) for r in await asyncio.gather(running, *queued)] == [0.0, 1.0, 2.0]
        finally:
            gate.set()
            await batcher.stop()

    _run(scenario)


def test_a_model_failure_reaches_every_request_of_the_group_and_the_batcher_goes_on() -> None:
    calls: list[int] = []

    def flaky(batch: np.ndarray) -> np.ndarray:
        calls.append(len(batch))
        if len(calls) == 1:
            raise RuntimeError("model exploded")
        return np.zeros((len(batch), 3), np.float32)

    async def scenario() -> None:
        batcher = MicroBatcher(flaky, max_batch_size=4, max_wait_s=0.05)
        await batcher.start()
        try:
            outcomes = await asyncio.gather(*(batcher.infer(_images(1.0)) for _ in range(3)), return_exceptions=True)
            assert [str(o) for o in outcomes] == ["model exploded"] * 3
            assert (await batcher.infer(_images(1.0))).shape == (1, 3)
        finally:
            await batcher.stop()

    _run(scenario)
    assert calls == [3, 1]


def test_stop_fails_waiting_requests_and_a_stopped_batcher_refuses() -> None:
    gate = threading.Event()
    model = Recorder(gate=gate)

    async def scenario() -> None:
        batcher = await _started(model, max_batch_size=1)
        pending = [asyncio.ensure_future(batcher.infer(_images(float(i)))) for i in range(3)]
        await _until(lambda: bool(model.sizes))
        await batcher.stop()
        outcomes = await asyncio.gather(*pending, return_exceptions=True)
        assert all(isinstance(o, NotRunning) for o in outcomes)
        with pytest.raises(NotRunning):
            await batcher.infer(_images(1.0))

    try:
        _run(scenario)
    finally:
        gate.set()


def test_stop_fails_a_group_still_waiting_for_company() -> None:
    model = Recorder()

    async def scenario() -> None:
        batcher = await _started(model, max_wait_s=NEVER_S)
        pending = asyncio.ensure_future(batcher.infer(_images(1.0)))
        await _until(lambda: batcher.waiting == 1)
        for _ in range(10):  # a few loop turns: the worker takes the request and waits for company
            await asyncio.sleep(0)
        await batcher.stop()
        with pytest.raises(NotRunning):
            await pending
        assert batcher.waiting == 0

    _run(scenario)
    assert model.sizes == []


def test_waiting_counts_queued_requests_until_the_model_takes_them() -> None:
    gate = threading.Event()
    model = Recorder(gate=gate)

    async def scenario() -> None:
        batcher = await _started(model, max_batch_size=2, max_wait_s=0.0)
        try:
            assert batcher.waiting == 0
            first = asyncio.ensure_future(batcher.infer(_images(0.0, 1.0)))
            await _until(lambda: bool(model.sizes))
            assert batcher.waiting == 0  # in the model, no longer waiting
            five = asyncio.ensure_future(batcher.infer(_images(*range(5))))
            one = asyncio.ensure_future(batcher.infer(_images(9.0)))
            await _until(lambda: batcher.waiting == 4)  # five images in chunks of 2, 2, 1; then one
            gate.set()
            results = await asyncio.gather(first, five, one)
            assert [r[:, 0].tolist() for r in results] == [[0, 1], [0, 1, 2, 3, 4], [9]]
            assert batcher.waiting == 0
        finally:
            gate.set()
            await batcher.stop()

    _run(scenario)
    assert model.sizes == [2, 2, 2, 2]  # the chunk of one shares its call with the next request


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="max_batch_size >= 1"):
        MicroBatcher(Recorder(), max_batch_size=0, max_wait_s=0.01)


# --------------------------------------------------------------------------- through the app


class Held:
    """The bundle's runner behind a gate: once ``armed``, each call records its size and waits for ``released``.

    Warm-up calls (before ``armed`` is set) pass straight through, so the app gets ready.
    """

    def __init__(self, loaded: LoadedBundle) -> None:
        self.loaded = loaded
        self.sizes: list[int] = []  # images in each call made while armed
        self.armed, self.released = threading.Event(), threading.Event()

    def bundle(self) -> LoadedBundle:
        return dataclasses.replace(self.loaded, runner=self)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        if self.armed.is_set():
            self.sizes.append(len(batch))
            self.released.wait(DEADLINE_S)
        return self.loaded.runner(batch)


async def _held_predictions(app: Any, held: Held, n: int,
                            release_when: Callable[[httpx.AsyncClient, list[asyncio.Task[Any]]], Awaitable[bool]],
                            ) -> tuple[list[httpx.Response], str]:
    """``n`` concurrent predictions against a held model, released once ``release_when`` says so."""
    png = encode(bright())
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            while (await client.get("/ready")).status_code != 200:
                await asyncio.sleep(0.01)
            held.armed.set()
            tasks = [asyncio.ensure_future(client.post("/predict", files={"file": ("x.png", png, "image/png")}))
                     for _ in range(n)]
            try:
                while not await release_when(client, tasks):
                    await asyncio.sleep(0.005)
            finally:
                held.released.set()
            responses = await asyncio.gather(*tasks)
            return list(responses), (await client.get("/metrics")).text


@pytest.mark.parametrize("max_batch_size", [8, 1])
def test_the_app_groups_concurrent_requests_into_few_model_calls(loaded: LoadedBundle, max_batch_size: int) -> None:
    held, n = Held(loaded), 16
    app = create_app(held.bundle(), ServeSettings(max_batch_size=max_batch_size, max_wait_ms=20))

    async def all_queued_behind_the_first_call(client: httpx.AsyncClient, _: list[asyncio.Task[Any]]) -> bool:
        if not held.sizes:
            return False
        depth = metric((await client.get("/metrics")).text, "mlestar_queue_depth")
        return depth == n - held.sizes[0]

    responses, exposition = _run(lambda: _held_predictions(app, held, n, all_queued_behind_the_first_call))
    assert [r.status_code for r in responses] == [200] * n
    assert {r.json()["label"] for r in responses} == {"bird"}
    first = held.sizes[0]  # how many joined the first call within max_wait depends on timing; the rest do not
    full, rest = divmod(n - first, max_batch_size)
    assert held.sizes == [first] + [max_batch_size] * full + ([rest] if rest else [])
    assert metric(exposition, "mlestar_batch_size_sum") == n  # warm-up calls are not counted
    assert metric(exposition, "mlestar_batch_size_count") == len(held.sizes)
    assert metric(exposition, "mlestar_queue_depth") == 0


def test_an_overloaded_app_answers_503_and_counts_it(loaded: LoadedBundle) -> None:
    held, n = Held(loaded), 6
    app = create_app(held.bundle(), ServeSettings(max_batch_size=1, max_queue=1))

    async def all_but_two_answered(_: httpx.AsyncClient, tasks: list[asyncio.Task[Any]]) -> bool:
        # The held model answers nothing, and it holds one request while the queue holds one more:
        # every other request must be refused before the model is released.
        return sum(task.done() for task in tasks) >= n - 2

    responses, exposition = _run(lambda: _held_predictions(app, held, n, all_but_two_answered))
    statuses = [r.status_code for r in responses]
    assert statuses.count(503) >= n - 2 and statuses.count(200) >= 1 and len(statuses) == n
    assert statuses.count(200) == len(held.sizes) <= 2  # one in the model, at most one queued behind it
    refused = [r.json() for r in responses if r.status_code == 503]
    assert all(body["kind"] == "overloaded" for body in refused)
    assert metric(exposition, "mlestar_errors_total", kind="overloaded") == len(refused)


# --------------------------------------------------------------------------- readiness


def test_ready_is_503_until_the_warm_up_finishes(loaded: LoadedBundle) -> None:
    from fastapi.testclient import TestClient

    gate = threading.Event()

    def blocked(batch: np.ndarray) -> np.ndarray:
        gate.wait(DEADLINE_S)
        return loaded.runner(batch)

    app = create_app(dataclasses.replace(loaded, runner=blocked), ServeSettings(ready_timeout_s=0.1))
    try:
        with TestClient(app) as client:
            assert client.get("/ready").status_code == 503
            assert client.get("/ready").json()["kind"] == "not_ready"
            assert client.get("/health").status_code == 200 and client.get("/health").json()["ready"] is False
            early = client.post("/predict", files={"file": ("x.png", encode(bright()), "image/png")})
            assert early.status_code == 503 and early.json()["kind"] == "not_ready"
            gate.set()
            deadline = time.monotonic() + DEADLINE_S
            while client.get("/ready").status_code != 200:
                assert time.monotonic() < deadline
                time.sleep(0.01)
            assert client.post("/predict", json={"image": base64.b64encode(encode(bright())).decode()}).json()[
                "label"] == "bird"
            assert metric(client.get("/metrics").text, "mlestar_ready") == 1
    finally:
        gate.set()


def test_a_failed_warm_up_keeps_the_app_unready_with_the_reason(loaded: LoadedBundle) -> None:
    from fastapi.testclient import TestClient

    def broken(batch: np.ndarray) -> np.ndarray:
        raise RuntimeError("no kernel for this CPU")

    with TestClient(create_app(dataclasses.replace(loaded, runner=broken))) as client:
        deadline = time.monotonic() + DEADLINE_S
        while "no kernel" not in client.get("/ready").text:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert client.get("/ready").status_code == 503
        response = client.post("/predict", files={"file": ("x.png", encode(bright()), "image/png")})
        assert response.status_code == 503 and "no kernel for this CPU" in response.json()["error"]


def test_a_model_failure_on_a_request_is_a_500_and_the_server_goes_on(loaded: LoadedBundle) -> None:
    failures = iter([True])

    def sometimes(batch: np.ndarray) -> np.ndarray:
        if len(batch) == 1 and batch.max() > 0 and next(failures, False):  # fails once, after the warm-up
            raise RuntimeError("bad luck")
        return loaded.runner(batch)

    with serving(create_app(dataclasses.replace(loaded, runner=sometimes))) as client:
        first = client.post("/predict", files={"file": ("x.png", encode(bright()), "image/png")})
        assert first.status_code == 500 and first.json() == {
            "error": "the model failed on this input: bad luck", "kind": "inference"}
        assert client.post("/predict", files={"file": ("x.png", encode(bright()), "image/png")}).status_code == 200
        assert metric(client.get("/metrics").text, "mlestar_errors_total", kind="inference") == 1
