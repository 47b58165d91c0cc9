"""Load-test `mlestar serve` with micro-batching on and off, in the same run.

Usage:  .venv/bin/python benchmarks/serve.py [--clients 32] [--requests 3000] [--runtime torchscript]

Builds a CIFAR-sized bundle (a freshly initialised ``airbench_xs``, 32x32x3,
10 classes: speed does not depend on training), starts ``mlestar serve`` in a
subprocess on 127.0.0.1 at a free port, waits for ``/ready``, and sends PNG
requests from ``--clients`` concurrent asyncio clients (httpx, one connection
each) until ``--requests`` have been answered, after ``--warmup`` untimed
ones. It does this twice, batching on (``--max-batch-size``, ``--max-wait-ms``)
and off (``--max-batch-size 1``), and prints requests/s, p50/p95/p99 latency,
the mean batch the server formed (from its ``/metrics``) and the on/off ratio.

The client runs on the same machine as the server, so both share its cores:
on a 2-core machine the numbers are a lower bound for a server with the
machine to itself.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def build_bundle(out_dir: Path) -> Path:
    """A bundle of an untrained airbench_xs for 32x32 RGB images (TorchScript and ONNX)."""
    import torch

    from mlestar.data.dataset import Preprocessing
    from mlestar.deploy import export_all, render_model_card, write_bundle
    from mlestar.models import create_model

    torch.manual_seed(0)
    model = create_model("airbench_xs", num_classes=10, in_channels=3, image_size=32).eval()
    exports = out_dir / "exports"
    exports.mkdir(parents=True)
    export_all(model, torch.randn(16, 3, 32, 32), exports, ["torchscript", "onnx"], tolerance=1e-4)
    prep = Preprocessing(image_size=32, channels=3, mean=CIFAR_MEAN, std=CIFAR_STD)
    card = render_model_card(project="serve-benchmark", run_id="bench", model_name="airbench_xs",
                             dataset="none (untrained)", metrics={}, targets={}, preprocessing=prep,
                             environment={"torch": torch.__version__}, limits=["untrained: for speed only"])
    reference = {"channel_mean": list(CIFAR_MEAN), "channel_std": list(CIFAR_STD), "class_frequencies": [0.1] * 10}
    return write_bundle(out_dir / "bundle", model_files={"torchscript": exports / "model.ts",
                                                         "onnx": exports / "model.onnx"},
                        class_names=CIFAR_CLASSES, preprocessing=prep,
                        metadata={"run_id": "bench", "model_name": "airbench_xs", "version": "bench"},
                        model_card=card, extra_files={"reference.json": reference})


def png_images(n: int, seed: int = 0) -> list[bytes]:
    """``n`` distinct 32x32 RGB PNG files of random pixels (about 3 kB each)."""
    rng = np.random.default_rng(seed)
    files = []
    for _ in range(n):
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(buffer, format="PNG")
        files.append(buffer.getvalue())
    return files


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Result:
    """One load run: requests per second, latency percentiles (seconds) and the server's mean batch."""

    label: str
    requests: int
    seconds: float
    latencies: list[float]
    mean_batch: float
    failures: int

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies, q))


async def _client(client: httpx.AsyncClient, files: list[bytes], budget: list[int], latencies: list[float],
                  failures: list[int]) -> None:
    """Send requests until the shared budget is spent; record each latency."""
    index = 0
    while budget[0] > 0:
        budget[0] -= 1
        data = files[index % len(files)]
        index += 1
        start = time.perf_counter()
        response = await client.post("/predict", files={"file": ("x.png", data, "image/png")})
        latencies.append(time.perf_counter() - start)
        if response.status_code != 200:
            failures[0] += 1


async def _load(base: str, files: list[bytes], clients: int, requests: int) -> tuple[float, list[float], int]:
    """``requests`` requests from ``clients`` concurrent clients; returns (seconds, latencies, failures).

    Each client is its own ``httpx.AsyncClient`` with one keep-alive connection,
    as separate users would be. One shared client with a 32-connection pool was
    the bottleneck itself on the 2-core machine (about 10 ms of client CPU per
    request against 3 ms with separate clients), so it measured httpx, not the server.
    """
    one = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    pool = [httpx.AsyncClient(base_url=base, limits=one, timeout=60) for _ in range(clients)]
    budget, latencies, failures = [requests], [], [0]
    try:
        start = time.perf_counter()
        await asyncio.gather(*(_client(client, files[i::clients] or files, budget, latencies, failures)
                               for i, client in enumerate(pool)))
        return time.perf_counter() - start, latencies, failures[0]
    finally:
        await asyncio.gather(*(client.aclose() for client in pool))


def _mean_batch(base: str) -> float:
    text = httpx.get(f"{base}/metrics", timeout=5).text
    values = {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples if not s.labels}
    count = values.get("mlestar_batch_size_count", 0.0)
    return values.get("mlestar_batch_size_sum", 0.0) / count if count else 0.0


def _wait_ready(base: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.time() + 120
    while time.time() < deadline:
        assert proc.poll() is None, "the server exited"
        try:
            if httpx.get(f"{base}/ready", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError("the server did not become ready in 120 s")


def run_mode(label: str, bundle: Path, args: argparse.Namespace, max_batch_size: int,
             files: list[bytes]) -> Result:
    """Start a server with ``max_batch_size``, warm it up, then time ``args.requests`` requests."""
    port = free_port()
    command = [sys.executable, "-m", "mlestar", "serve", str(bundle), "--port", str(port), "--runtime",
               args.runtime, "--max-batch-size", str(max_batch_size), "--max-wait-ms", str(args.max_wait_ms)]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(base, proc)
        asyncio.run(_load(base, files, args.clients, args.warmup))
        seconds, latencies, failures = asyncio.run(_load(base, files, args.clients, args.requests))
        return Result(label, args.requests, seconds, latencies, _mean_batch(base), failures)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def report(results: list[Result]) -> None:
    print(f"{'mode':<34} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'mean batch':>11} {'failed':>7}")
    for r in results:
        print(f"{r.label:<34} {r.rps:>8.1f} {r.percentile(50) * 1e3:>8.1f} {r.percentile(95) * 1e3:>8.1f} "
              f"{r.percentile(99) * 1e3:>8.1f} {r.mean_batch:>11.2f} {r.failures:>7d}")
    on, off = results
    ratio = on.rps / off.rps
    print(f"throughput ratio batching on / off: {ratio:.2f} "
          f"({'at least' if ratio >= 2 else 'less than'} double)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients")
    parser.add_argument("--requests", type=int, default=3000, help="timed requests per mode")
    parser.add_argument("--warmup", type=int, default=300, help="untimed requests per mode, sent first")
    parser.add_argument("--runtime", default="torchscript", choices=["torchscript", "onnx"])
    parser.add_argument("--max-batch-size", type=int, default=32, help="batch limit with batching on")
    parser.add_argument("--max-wait-ms", type=float, default=5.0, help="batching wait with batching on")
    args = parser.parse_args()
    files = png_images(64)
    with tempfile.TemporaryDirectory() as tmp:
        bundle = build_bundle(Path(tmp))
        modes = [(f"batching on (max {args.max_batch_size}, {args.max_wait_ms:g} ms)", args.max_batch_size),
                 ("batching off (max 1)", 1)]
        print(f"airbench_xs 32x32x3, {args.runtime}, {args.clients} clients, {args.requests} requests per mode")
        before = os.getloadavg()[0]
        results = [run_mode(label, bundle, args, size, files) for label, size in modes]
        report(results)
        # Other jobs may share the machine; the 1-minute load average shows how much.
        print(f"1-minute load average: {before:.2f} before, {os.getloadavg()[0]:.2f} after")


if __name__ == "__main__":
    main()
