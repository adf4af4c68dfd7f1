"""Health-check cycle benchmark: N registered services checked in one cycle, concurrent against sequential.

    .venv/bin/python scripts/bench/health_checks.py [--sizes 10,100,200,1000] [--cycles 5] [--ports 20]

Starts N local HTTP endpoints in a separate process (spread over `--ports` listening ports), each answering the
Michigan probe (`GET {base}/api/v2/server`) after 200 ms; 10 % of them accept the connection and never answer
(for N = 200 none do, to compare with the latency of one live service). The services are registered in a
database of the benchmark's own (on the PostgreSQL of DATABASE_URL, dropped at the end), and the registry's
own `HealthChecker.run_cycle()` is timed with its shipped settings except a 2 s check timeout: probes, health-log
rows, state updates and the Redis cache (REDIS_URL) included. Each size runs `--cycles` cycles, resetting the
services to "due" in between, to show that memory stays flat. Sequential probing (the system we replace checked
one service after another) is timed where feasible (N <= 100).

Goals (issue 4): 200 live services within 2x the latency of one (0.4 s); 1000 services, 100 of them dead, in
under 3 s; resident memory flat from cycle to cycle.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

LATENCY_S = 0.2
TIMEOUT_S = 2.0


def serve_endpoints(ports: list[int], ready: Any) -> None:
    """The fake services: 200 ms to answer, or never for paths under /dead."""
    from aiohttp import web

    async def handler(request: web.Request) -> web.Response:
        if request.path.startswith("/dead"):
            await asyncio.sleep(3600)
        await asyncio.sleep(LATENCY_S)
        return web.json_response({"name": "bench", "apps": [], "loggedIn": False, "maintenace": False})

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/{tail:.*}", handler)
        runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await runner.setup()
        for port in ports:
            await web.TCPSite(runner, "127.0.0.1", port, backlog=2048).start()
        ready.set()
        await asyncio.Event().wait()

    asyncio.run(main())


def rss_mb() -> float:
    import psutil

    return float(psutil.Process().memory_info().rss) / 2**20


async def run(sizes: list[int], cycles: int, ports: list[int]) -> list[dict[str, object]]:
    from alembic import command
    from sqlalchemy import delete, update

    from microservices.common.db import Database
    from microservices.common.migrate import alembic_config, create_databases, drop_databases
    from microservices.common.redis import CACHE_DB, make_redis
    from microservices.service_registry.checker import HealthChecker
    from microservices.service_registry.config import Settings
    from microservices.service_registry.models import HealthCheck, ImputationService
    from microservices.service_registry.remote import make_session, probe

    server_url = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    name = f"bench_registry_{os.getpid()}"
    create_databases(server_url, [name])
    settings = Settings(
        database_url=server_url.rsplit("/", 1)[0] + f"/{name}",
        health_connect_timeout_s=TIMEOUT_S,
        health_total_timeout_s=TIMEOUT_S,
        health_cache_prefix=f"bench:{uuid.uuid4().hex}:",
        redis_url=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379"),
    )
    command.upgrade(alembic_config("service_registry", settings.sync_database_url()), "head")
    database = Database(settings.async_database_url(), pool_size=5)
    redis = make_redis(settings.redis_db_url(CACHE_DB))
    rows: list[dict[str, object]] = []
    try:
        for size in sizes:
            dead = 0 if size == 200 else size // 10
            async with database.sessionmaker() as session:
                await session.execute(delete(HealthCheck))
                await session.execute(delete(ImputationService))
                for i in range(size):
                    prefix = "dead" if i < dead else "live"
                    session.add(
                        ImputationService(
                            name=f"bench-{size}-{i}",
                            slug=f"bench-{size}-{i}",
                            api_type="michigan",
                            base_url=f"http://127.0.0.1:{ports[i % len(ports)]}/{prefix}{i}",
                            capabilities={},
                        )
                    )
                await session.commit()
            http = make_session(connect_timeout_s=TIMEOUT_S, total_timeout_s=TIMEOUT_S)
            checker = HealthChecker(
                settings=settings, sessionmaker=database.sessionmaker, http=http, redis=redis, fernet=None
            )
            times, probes, memory, unhealthy = [], [], [], []
            for _ in range(cycles):
                async with database.sessionmaker() as session:
                    await session.execute(update(ImputationService).values(last_checked_at=None, is_active=True))
                    await session.commit()
                started = time.perf_counter()
                states = await checker.run_cycle()
                times.append(time.perf_counter() - started)
                probes.append(checker.last_probe_s or 0.0)
                memory.append(rss_mb())
                assert len(states) == size, (len(states), size)
                # More unhealthy than dead means live services missed the timeout: the machine is overloaded.
                unhealthy.append(sum(s.status == "unhealthy" for s in states))
            sequential = None
            if size <= 100:
                async with database.sessionmaker() as session:
                    services = (await session.execute(ImputationService.__table__.select())).all()
                started = time.perf_counter()
                for service in services:
                    await probe(http, api_type="michigan", base_url=service.base_url)
                sequential = time.perf_counter() - started
            await http.close()
            best = min(times)
            rows.append(
                {
                    "n": size,
                    "dead": dead,
                    "unhealthy_max": max(unhealthy),
                    "cycle_median_s": statistics.median(times),
                    "cycle_best_s": best,
                    "probe_best_s": min(probes),
                    # Against one live service's latency; with dead services the floor is the timeout instead.
                    "x_latency": best / (LATENCY_S if dead == 0 else TIMEOUT_S),
                    "sequential_s": sequential,
                    "rss_first_mb": memory[0],
                    "rss_last_mb": memory[-1],
                }
            )
            print(f"n={size} done: cycles {', '.join(f'{t:.2f}' for t in times)} s", file=sys.stderr, flush=True)
    finally:
        await redis.aclose()
        await database.dispose()
        drop_databases(server_url, [name])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10,100,200,1000")
    parser.add_argument("--cycles", type=int, default=5)
    parser.add_argument("--ports", type=int, default=20)
    args = parser.parse_args()
    from microservices.common.localinfra import free_port

    ports = [free_port() for _ in range(args.ports)]
    ready = multiprocessing.Event()
    server = multiprocessing.Process(target=serve_endpoints, args=(ports, ready), daemon=True)
    server.start()
    if not ready.wait(30):
        raise SystemExit("the endpoints did not start")
    try:
        rows = asyncio.run(run([int(s) for s in args.sizes.split(",")], args.cycles, ports))
    finally:
        server.terminate()
        server.join(5)
    print(f"one live service answers in {LATENCY_S * 1000:.0f} ms; dead ones never (timeout {TIMEOUT_S:g} s)")
    print(
        "| N | dead | unhealthy (max) | cycle median (s) | cycle best (s) | probes best (s) "
        "| best / floor (200 ms live, 2 s with dead) | sequential (s) | RSS first → last (MB) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        sequential = f"{row['sequential_s']:.2f}" if row["sequential_s"] is not None else "not run"
        print(
            f"| {row['n']} | {row['dead']} | {row['unhealthy_max']} | {row['cycle_median_s']:.2f} | "
            f"{row['cycle_best_s']:.2f} | {row['probe_best_s']:.2f} | "
            f"{row['x_latency']:.1f}x | {sequential} | {row['rss_first_mb']:.0f} → {row['rss_last_mb']:.0f} |"
        )


if __name__ == "__main__":
    main()
