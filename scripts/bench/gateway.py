"""Gateway overhead: a trivial endpoint called directly, through nginx and through the gateway, interleaved.

    .venv/bin/python scripts/bench/gateway.py [--rounds 3] [--duration 5]

Starts a trivial FastAPI upstream, nginx (Debian's, keepalive to the upstream, config in a temp dir) and the
gateway (JWT checking and rate limiting on, against an embedded Redis of its own), then runs `wrk`
at concurrency 1 and 50 against each in turn, round after round, and prints the median of the rounds: requests
per second, p50, p99 and the ratios to direct. Goals (issue 3): at concurrency 1 the gateway adds at most 1 ms
at p50; at 50 it keeps at least 25 % of direct throughput, does not fall below its own concurrency-1
throughput, and its p99 is at most 5x direct's.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from microservices.common.localinfra import EmbeddedRedis, free_port, wait_for_port  # noqa: E402
from tests.harness import TokenFactory  # noqa: E402

CONCURRENCIES = (1, 50)
TARGETS = ("direct", "nginx", "gateway")

NGINX_CONF = """
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    upstream app {{ server 127.0.0.1:{upstream_port}; keepalive 64; }}
    server {{
        listen 127.0.0.1:{port};
        location /api/ {{
            proxy_pass http://app/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""


@dataclass(frozen=True)
class Run:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS_MS[unit]


def wrk(url: str, *, concurrency: int, duration_s: int, headers: dict[str, str]) -> Run:
    """One wrk run; its requests per second, p50, p99 and non-2xx count."""
    argv = ["wrk", f"-t{min(2, concurrency)}", f"-c{concurrency}", f"-d{duration_s}s", "--latency"]
    for name, value in headers.items():
        argv += ["-H", f"{name}: {value}"]
    out = subprocess.run([*argv, url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return Run(rps, p50, p99, int(errors.group(1)) if errors else 0)


def start(argv: list[str], *, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(argv, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--redis-url", help="a Redis to use instead of an embedded one started for the run")
    parser.add_argument("--gateway-workers", type=int, default=1, help="uvicorn worker processes of the gateway")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} CPUs, load average before the run {os.getloadavg()[0]:.2f}")
    for tool in ("wrk", "nginx"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            raise SystemExit(f"{tool} is needed: apt-get install wrk nginx-light")

    tmp = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    tmp.chmod(0o777)
    tokens = TokenFactory()
    processes: list[subprocess.Popen[bytes]] = []
    redis_server = None
    try:
        # A Redis of its own unless one is named: a shared one carries other work that would be measured too.
        redis_url = args.redis_url
        if not redis_url:
            redis_server = EmbeddedRedis(tmp / "redis", port=free_port())
            redis_url = redis_server.start()
        upstream_port, nginx_port, gateway_port = free_port(), free_port(), free_port()
        upstream = f"http://127.0.0.1:{upstream_port}"
        env = {**os.environ, "BENCH_JWKS": json.dumps(tokens.jwks)}
        processes.append(
            start(
                [sys.executable, "scripts/bench/trivial_upstream.py", str(upstream_port)], env=env, log=tmp / "up.log"
            )
        )
        (tmp / "nginx.conf").write_text(NGINX_CONF.format(tmp=tmp, upstream_port=upstream_port, port=nginx_port))
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        processes.append(start([nginx, "-c", str(tmp / "nginx.conf"), "-p", str(tmp)], env=env, log=tmp / "ng.log"))
        gateway_env = {
            **env,
            "ENVIRONMENT": "development",
            "REDIS_URL": redis_url,
            "GATEWAY_PORT": str(gateway_port),
            "SERVICE_REGISTRY_URL": upstream,
            "USER_SERVICE_URL": upstream,
            # Rate limiting stays on (one Redis round trip per request), with a limit the run never reaches.
            "GATEWAY_RATE_LIMIT_DEFAULT": "1000000000",
            "GATEWAY_RATE_LIMIT_ENABLED": "true",
            "GATEWAY_WORKERS": str(args.gateway_workers),
        }
        processes.append(
            start([sys.executable, "-m", "microservices.gateway"], env=gateway_env, log=tmp / "gateway.log")
        )
        for port in (upstream_port, nginx_port, gateway_port):
            wait_for_port(port, timeout_s=30)

        token = tokens.token(sub="bench", roles=["researcher"], expires_in_s=24 * 3600)
        auth = {"Authorization": f"Bearer {token}"}
        urls = {
            "direct": f"{upstream}/services/ping",
            "nginx": f"http://127.0.0.1:{nginx_port}/api/services/ping",
            "gateway": f"http://127.0.0.1:{gateway_port}/api/services/ping",
        }
        for name, url in urls.items():
            response = httpx.get(url, headers=auth, timeout=10)
            if response.status_code != 200:
                raise SystemExit(f"{name} answered {response.status_code}: {response.text}")
        without_token = httpx.get(urls["gateway"], timeout=10).status_code
        print(f"gateway without a token answers {without_token}; with one, 200 (JWT checked, rate limit counted)")

        # Warm-up: connection pools, JIT-less Python caches, the JWKS fetch.
        for url in urls.values():
            wrk(url, concurrency=50, duration_s=1, headers=auth)

        results: dict[tuple[str, int], list[Run]] = {(t, c): [] for t in TARGETS for c in CONCURRENCIES}
        for round_no in range(1, args.rounds + 1):
            for concurrency in CONCURRENCIES:
                for target in TARGETS:
                    run = wrk(urls[target], concurrency=concurrency, duration_s=args.duration, headers=auth)
                    results[(target, concurrency)].append(run)
                    print(
                        f"round {round_no} c={concurrency:<2} {target:<8} {run.requests_per_s:9.1f} req/s "
                        f"p50 {run.p50_ms:7.3f} ms  p99 {run.p99_ms:7.3f} ms  non-2xx {run.errors}",
                        flush=True,
                    )
        report(results)
        print(f"load average after the run {os.getloadavg()[0]:.2f}")
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        if redis_server is not None:
            redis_server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def report(results: dict[tuple[str, int], list[Run]]) -> None:
    """The medians of the rounds, the ratios to direct, and the issue's goals checked."""
    median: dict[tuple[str, int], Run] = {
        key: Run(
            statistics.median(r.requests_per_s for r in runs),
            statistics.median(r.p50_ms for r in runs),
            statistics.median(r.p99_ms for r in runs),
            sum(r.errors for r in runs),
        )
        for key, runs in results.items()
    }
    print()
    print(f"{'conc':>4} {'target':<8} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'rps/direct':>10} "
          f"{'p50 added ms':>12} {'p99/direct':>10} {'non-2xx':>7}")  # fmt: skip
    for concurrency in CONCURRENCIES:
        direct = median[("direct", concurrency)]
        for target in TARGETS:
            m = median[(target, concurrency)]
            print(
                f"{concurrency:>4} {target:<8} {m.requests_per_s:9.1f} {m.p50_ms:8.3f} {m.p99_ms:8.3f} "
                f"{m.requests_per_s / direct.requests_per_s:9.1%} {m.p50_ms - direct.p50_ms:12.3f} "
                f"{m.p99_ms / direct.p99_ms:10.2f} {m.errors:>7}"
            )
    gateway_1, gateway_50 = median[("gateway", 1)], median[("gateway", 50)]
    direct_1, direct_50 = median[("direct", 1)], median[("direct", 50)]
    goals = [
        ("p50 added at concurrency 1 <= 1 ms", gateway_1.p50_ms - direct_1.p50_ms <= 1.0),
        ("throughput at 50 >= 25 % of direct", gateway_50.requests_per_s >= 0.25 * direct_50.requests_per_s),
        ("throughput does not fall from 1 to 50", gateway_50.requests_per_s >= gateway_1.requests_per_s),
        ("p99 at 50 <= 5x direct p99", gateway_50.p99_ms <= 5 * direct_50.p99_ms),
        ("every response 2xx", all(m.errors == 0 for m in median.values())),
    ]
    print()
    for text, met in goals:
        print(f"  [{'met' if met else 'MISSED'}] gateway {text}")


if __name__ == "__main__":
    raise SystemExit(main())
