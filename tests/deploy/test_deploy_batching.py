"""Micro-batching: grouping, waiting, turning it off, overload, failures, and the same through the app.

The batcher tests drive :class:`MicroBatcher` on an event loop of their own
with a fake model that records each call; the app tests send concurrent
requests through ``httpx.ASGITransport`` to a bundle whose runner is slowed
down, and read the batch sizes back from ``/metrics``.
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


class Recorder:
    """A fake model: logits are each image's first pixel, repeated; every call's size is recorded."""

    def __init__(self, delay_s: float = 0.0, gate: threading.Event | None = None) -> None:
        self.sizes: list[int] = []
        self.delay_s, self.gate = delay_s, gate

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        self.sizes.append(len(batch))
        if self.gate is not None:
            self.gate.wait(10)
        time.sleep(self.delay_s)
        return np.repeat(batch[:, :1, 0, 0], 3, axis=1)


def _images(*values: float) -> np.ndarray:
    return np.asarray(values, dtype=np.float32).reshape(-1, 1, 1, 1) * np.ones((1, 1, 2, 2), np.float32)


def _run(test: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(asyncio.wait_for(test(), timeout=20))


async def _started(model: Recorder, **options: Any) -> MicroBatcher:
    batcher = MicroBatcher(model, **{"max_batch_size": 4, "max_wait_s": 0.05, **options})
    await batcher.start()
    return batcher


# --------------------------------------------------------------------------- the batcher


def test_concurrent_requests_share_model_calls_and_get_their_own_rows() -> None:
    model = Recorder(delay_s=0.02)

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


def test_a_lone_request_waits_at_most_max_wait() -> None:
    model = Recorder()

    async def scenario() -> float:
        batcher = await _started(model, max_wait_s=0.2)
        try:
            start = time.perf_counter()
            await batcher.infer(_images(1.0))
            return time.perf_counter() - start
        finally:
            await batcher.stop()

    waited = _run(scenario)
    assert 0.19 <= waited < 2.0 and model.sizes == [1]


def test_a_full_batch_runs_without_waiting() -> None:
    model = Recorder()

    async def scenario() -> float:
        batcher = await _started(model, max_wait_s=5.0)
        try:
            start = time.perf_counter()
            await asyncio.gather(*(batcher.infer(_images(1.0)) for _ in range(4)))
            return time.perf_counter() - start
        finally:
            await batcher.stop()

    assert _run(scenario) < 2.0 and model.sizes == [4]


def test_max_batch_size_one_turns_batching_off() -> None:
    model = Recorder(delay_s=0.01)

    async def scenario() -> float:
        batcher = await _started(model, max_batch_size=1, max_wait_s=5.0)
        try:
            start = time.perf_counter()
            await asyncio.gather(*(batcher.infer(_images(float(i))) for i in range(6)))
            return time.perf_counter() - start
        finally:
            await batcher.stop()

    assert _run(scenario) < 2.0  # the 5 s wait is ignored: nothing waits for company
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
            while not model.sizes:  # wait until the worker holds the first request in the model
                await asyncio.sleep(0.005)
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
        while not model.sizes:
            await asyncio.sleep(0.005)
        await batcher.stop()
        outcomes = await asyncio.gather(*pending, return_exceptions=True)
        assert all(isinstance(o, NotRunning) for o in outcomes)
        with pytest.raises(NotRunning):
            await batcher.infer(_images(1.0))

    try:
        _run(scenario)
    finally:
        gate.set()


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="max_batch_size >= 1"):
        MicroBatcher(Recorder(), max_batch_size=0, max_wait_s=0.01)


# --------------------------------------------------------------------------- through the app


def _slowed(loaded: LoadedBundle, delay_s: float, sizes: list[int]) -> LoadedBundle:
    def run(batch: np.ndarray) -> np.ndarray:
        sizes.append(len(batch))
        time.sleep(delay_s)
        return loaded.runner(batch)

    return dataclasses.replace(loaded, runner=run)


async def _concurrent_predictions(app: Any, n: int) -> tuple[list[httpx.Response], str]:
    png = encode(bright())
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            while (await client.get("/ready")).status_code != 200:
                await asyncio.sleep(0.01)
            responses = await asyncio.gather(*(client.post("/predict", files={"file": ("x.png", png, "image/png")})
                                               for _ in range(n)))
            return list(responses), (await client.get("/metrics")).text


@pytest.mark.parametrize(("max_batch_size", "most_calls"), [(8, 6), (1, 16)])
def test_the_app_groups_concurrent_requests_into_few_model_calls(loaded: LoadedBundle, max_batch_size: int,
                                                                 most_calls: int) -> None:
    sizes: list[int] = []
    app = create_app(_slowed(loaded, 0.03, sizes), ServeSettings(max_batch_size=max_batch_size, max_wait_ms=20))
    responses, exposition = _run(lambda: _concurrent_predictions(app, 16))
    assert [r.status_code for r in responses] == [200] * 16
    assert {r.json()["label"] for r in responses} == {"bird"}
    calls = metric(exposition, "mlestar_batch_size_count")
    assert metric(exposition, "mlestar_batch_size_sum") == 16  # warm-up calls are not counted
    assert calls <= most_calls and max(sizes) <= max_batch_size
    if max_batch_size == 1:
        assert calls == 16
    else:
        assert metric(exposition, "mlestar_batch_size_bucket", le="1.0") < calls  # some calls held several


def test_an_overloaded_app_answers_503_and_counts_it(loaded: LoadedBundle) -> None:
    sizes: list[int] = []
    app = create_app(_slowed(loaded, 0.2, sizes), ServeSettings(max_batch_size=1, max_queue=1))
    responses, exposition = _run(lambda: _concurrent_predictions(app, 6))
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(200) >= 1 and statuses.count(503) >= 3  # one waits in the queue, one may be running
    refused = [r.json() for r in responses if r.status_code == 503]
    assert all(body["kind"] == "overloaded" for body in refused)
    assert metric(exposition, "mlestar_errors_total", kind="overloaded") == len(refused)


# --------------------------------------------------------------------------- readiness


def test_ready_is_503_until_the_warm_up_finishes(loaded: LoadedBundle) -> None:
    from fastapi.testclient import TestClient

    gate = threading.Event()

    def blocked(batch: np.ndarray) -> np.ndarray:
        gate.wait(10)
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
            deadline = time.monotonic() + 10
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
        deadline = time.monotonic() + 10
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
