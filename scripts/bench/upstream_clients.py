"""Which HTTP client the gateway should proxy with: httpx and aiohttp, interleaved, against one trivial upstream.

    .venv/bin/python scripts/bench/upstream_clients.py [--rounds 3] [--requests 3000]

Each client, as the gateway would hold it (one long-lived pool), sends `--requests` GETs to the benchmark's
trivial upstream with 1 and with 50 in flight; the script prints requests per second and the median of the
rounds. The gateway uses aiohttp on its proxy path because of this measurement (microservices/gateway/proxy.py).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import httpx
import uvloop

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from microservices.common.localinfra import free_port, wait_for_port  # noqa: E402

Fetch = Callable[[], Awaitable[None]]


async def rate(fetch: Fetch, *, requests: int, concurrency: int) -> float:
    """Requests per second for `requests` calls of `fetch`, `concurrency` at a time."""
    remaining = requests

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await fetch()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return requests / (time.perf_counter() - started)


async def measure(url: str, *, rounds: int, requests: int) -> dict[tuple[str, int], list[float]]:
    results: dict[tuple[str, int], list[float]] = {}
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    async with httpx.AsyncClient(limits=limits) as hx, aiohttp.ClientSession() as aio:

        async def with_httpx() -> None:
            response = await hx.get(url)
            response.raise_for_status()

        async def with_aiohttp() -> None:
            async with aio.get(url) as response:
                await response.read()
                response.raise_for_status()

        clients = {"httpx": with_httpx, "aiohttp": with_aiohttp}
        for fetch in clients.values():  # warm-up: open the pools
            await rate(fetch, requests=200, concurrency=50)
        for _ in range(rounds):
            for concurrency in (1, 50):
                for name, fetch in clients.items():
                    rps = await rate(fetch, requests=requests, concurrency=concurrency)
                    results.setdefault((name, concurrency), []).append(rps)
                    print(f"{name:<8} c={concurrency:<3} {rps:8.1f} req/s", flush=True)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=3000)
    args = parser.parse_args()
    port = free_port()
    upstream = subprocess.Popen([sys.executable, str(ROOT / "scripts/bench/trivial_upstream.py"), str(port)])
    try:
        wait_for_port(port, timeout_s=30)
        url = f"http://127.0.0.1:{port}/services/ping"
        results = uvloop.run(measure(url, rounds=args.rounds, requests=args.requests))
    finally:
        upstream.terminate()
        upstream.wait(timeout=10)
    print(f"\n{'client':<8} {'conc':>4} {'median req/s':>12}")
    for (name, concurrency), values in sorted(results.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        print(f"{name:<8} {concurrency:>4} {statistics.median(values):12.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
