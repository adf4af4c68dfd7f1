"""Upload benchmark: a large VCF sent to the file manager directly and through the gateway.

    python scripts/bench/upload.py [--size-mb 500] [--concurrency 4] [--file PATH] [--direct-only]

Starts a file manager (and a gateway in front of it) as real processes on free ports, against the PostgreSQL and
Redis of DATABASE_URL and REDIS_URL (a database of its own, dropped at the end), with tokens signed by a key
of its own served as the JWKS. It prints, for each way in, the wall time and throughput next to a plain disk copy
(copy + fsync) of the same file, the bytes the file manager process wrote (psutil `io_counters().write_bytes`)
against the file size, and the peak RSS growth of the file manager and the gateway, for one upload and for
`--concurrency` uploads at once. Goals (issue 5): bytes written at most 1.05x the file; peak memory growth at
most 64 MB per concurrent upload in each process; through the gateway at least 50 % of direct.
When the gateway does not start or does not route `/api/files/upload`, the direct figures are printed alone.
"""

from __future__ import annotations

import argparse
import hashlib
import http.server
import json
import os
import random
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
from alembic import command
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jose import jwk, jwt
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from microservices.common.localinfra import free_port  # noqa: E402
from microservices.common.migrate import alembic_config, create_databases, drop_databases  # noqa: E402

MB = 1024 * 1024
CHUNK = 1024 * 1024
BOUNDARY = "bench" + uuid.uuid4().hex


# --- the file ----------------------------------------------------------------------------------------------------


def make_vcf(path: Path, size_bytes: int, *, samples: int = 100, seed: int = 5) -> None:
    """A plain-text, phased, single-chromosome VCF of about `size_bytes` (made once, then reused)."""
    rng = random.Random(seed)
    pool = ["\t".join(rng.choice(("0|0", "0|1", "1|0", "1|1")) for _ in range(samples)) for _ in range(997)]
    names = "\t".join(f"S{i:05d}" for i in range(samples))
    with path.open("w") as out:
        out.write("##fileformat=VCFv4.2\n##contig=<ID=20,length=63025520>\n")
        out.write('##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n')
        out.write(f"#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t{names}\n")
        position, written, lines = 60000, 0, []
        while written < size_bytes:
            position += rng.randint(1, 30)
            line = f"20\t{position}\t.\tA\tG\t.\tPASS\t.\tGT\t{pool[position % 997]}\n"
            lines.append(line)
            written += len(line)
            if len(lines) == 10000:
                out.write("".join(lines))
                lines.clear()
        out.write("".join(lines))


def disk_copy_seconds(source: Path, target: Path) -> float:
    """A plain copy of the file beside the storage, flushed to disk as the file manager does."""
    started = time.perf_counter()
    shutil.copyfile(source, target)
    with target.open("rb+") as handle:
        os.fsync(handle.fileno())
    elapsed = time.perf_counter() - started
    target.unlink()
    return elapsed


# --- tokens ------------------------------------------------------------------------------------------------------


class Signer:
    """Signs access tokens and serves its public key as a JWKS, standing in for the user service."""

    def __init__(self) -> None:
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.pem = private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        public = private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.kid = uuid.uuid4().hex[:16]
        body = json.dumps({"keys": [{**jwk.construct(public, "RS256").to_dict(), "kid": self.kid, "use": "sig"}]})
        payload = body.encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.jwks_url = f"http://127.0.0.1:{self.server.server_address[1]}/.well-known/jwks.json"

    def token(self, user_id: int = 1) -> str:
        now = int(time.time())
        claims = {
            "sub": str(user_id),
            "username": f"bench{user_id}",
            "roles": ["researcher"],
            "iat": now,
            "exp": now + 3600,
            "iss": "federated-imputation",
            "aud": "federated-imputation-api",
            "jti": uuid.uuid4().hex,
        }
        return str(jwt.encode(claims, self.pem, algorithm="RS256", headers={"kid": self.kid}))


# --- processes ---------------------------------------------------------------------------------------------------


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    @property
    def ps(self) -> psutil.Process:
        return psutil.Process(self.process.pid)


def start(name: str, module: str, port: int, env: dict[str, str], log_dir: Path) -> Server:
    log = log_dir / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", module], env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited; see {log}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return Server(name, process, url, log)
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    process.terminate()
    raise RuntimeError(f"{name} did not become healthy; see {log}")


def stop(server: Server) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.process.kill()


# --- measuring ---------------------------------------------------------------------------------------------------


@dataclass
class MemoryWatch:
    """Samples the RSS of processes every 20 ms; reports each one's peak above its level at the start."""

    servers: list[Server]
    baseline: dict[str, int] = field(default_factory=dict)
    peak: dict[str, int] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __enter__(self) -> MemoryWatch:
        for server in self.servers:
            self.baseline[server.name] = self.peak[server.name] = server.ps.memory_info().rss
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            for server in self.servers:
                rss = server.ps.memory_info().rss
                self.peak[server.name] = max(self.peak[server.name], rss)
            time.sleep(0.02)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def growth_mb(self, name: str) -> float:
        return (self.peak[name] - self.baseline[name]) / MB


def multipart_body(path: Path, filename: str) -> tuple[Iterator[bytes], int]:
    """The multipart body streamed from disk, and its length."""
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\ninput\r\n'
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        "Content-Type: text/plain\r\n\r\n"
    ).encode()
    tail = f"\r\n--{BOUNDARY}--\r\n".encode()
    size = path.stat().st_size

    def chunks() -> Iterator[bytes]:
        yield head
        with path.open("rb") as handle:
            while block := handle.read(CHUNK):
                yield block
        yield tail

    return chunks(), len(head) + size + len(tail)


def upload(url: str, path: Path, token: str) -> dict[str, Any]:
    body, length = multipart_body(path, path.name)
    headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
        "Content-Length": str(length),
    }
    response = httpx.post(url, content=body, headers=headers, timeout=httpx.Timeout(600, connect=10))
    if response.status_code != 201:
        raise RuntimeError(f"upload to {url} answered {response.status_code}: {response.text[:300]}")
    result: dict[str, Any] = response.json()
    return result


@dataclass
class Run:
    label: str
    seconds: float
    uploads: int
    written_bytes: int
    memory_mb: dict[str, float]
    cpu_s: dict[str, float]


def measure(
    label: str, *, url: str, path: Path, token: str, file_manager: Server, watch: list[Server], concurrency: int
) -> tuple[Run, list[dict[str, Any]]]:
    before = file_manager.ps.io_counters().write_bytes
    cpu_before = {server.name: sum(server.ps.cpu_times()[:2]) for server in watch}
    with MemoryWatch(watch) as memory:
        started = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            results = list(pool.map(lambda _: upload(url, path, token), range(concurrency)))
        elapsed = time.perf_counter() - started
        # Dirty pages are charged to the process when they are written back; wait for it.
        os.sync()
        time.sleep(0.5)
    written = file_manager.ps.io_counters().write_bytes - before
    growth = {server.name: memory.growth_mb(server.name) for server in watch}
    cpu = {server.name: sum(server.ps.cpu_times()[:2]) - cpu_before[server.name] for server in watch}
    return Run(label, elapsed, concurrency, written, growth, cpu), results


def delete_all(base: str, results: list[dict[str, Any]], token: str) -> None:
    for result in results:
        httpx.delete(f"{base}/files/{result['id']}", headers={"Authorization": f"Bearer {token}"}, timeout=30)


# --- main --------------------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=float, default=500)
    parser.add_argument("--file", type=Path, help="upload this file instead of a generated VCF")
    parser.add_argument("--concurrency", type=int, default=4, help="uploads at once in the concurrent runs")
    parser.add_argument("--direct-only", action="store_true", help="do not start or measure the gateway")
    parser.add_argument("--work-dir", type=Path, default=ROOT / "var" / "bench" / "upload")
    args = parser.parse_args()

    work = args.work_dir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    path = args.file
    if path is None:
        path = work / f"upload-{args.size_mb:g}mb.vcf"
        if not path.exists() or abs(path.stat().st_size - args.size_mb * MB) > MB:
            print(f"making {path} ...", flush=True)
            make_vcf(path, int(args.size_mb * MB))
    size = path.stat().st_size
    sha256 = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(8 * MB):
            sha256.update(block)

    server_url = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379")
    database = f"bench{os.getpid()}_file_management_db"
    drop_databases(server_url, [database])
    create_databases(server_url, [database])
    database_url = make_url(server_url).set(database=database).render_as_string(hide_password=False)
    command.upgrade(
        alembic_config(
            "file_manager", make_url(database_url).set(drivername="postgresql+psycopg2").render_as_string(False)
        ),
        "head",
    )
    storage = work / "files"
    signer = Signer()
    ports = {"file_manager": free_port(), "gateway": free_port()}
    env = {
        **os.environ,
        "ENVIRONMENT": "test",
        "LOG_LEVEL": "WARNING",
        "DATABASE_URL": server_url,
        "REDIS_URL": redis_url,
        "JWKS_URL": signer.jwks_url,
        "FILE_MANAGER_PORT": str(ports["file_manager"]),
        "FILE_MANAGER_URL": f"http://127.0.0.1:{ports['file_manager']}",
        "FILE_MANAGER_DATABASE_URL": database_url,
        "FILE_MANAGER_STORAGE_DIR": str(storage),
        "FILE_MANAGER_MAX_UPLOAD_MB": str(size / MB + 16),
        "FILE_MANAGER_USER_QUOTA_MB": str((size / MB + 16) * (args.concurrency + 2)),
        "FILE_MANAGER_ACCESS_LOG": "false",
        "GATEWAY_PORT": str(ports["gateway"]),
        "GATEWAY_RATE_LIMIT_ENABLED": "false",
        "GATEWAY_ACCESS_LOG": "false",
    }
    servers: list[Server] = []
    runs: list[Run] = []
    notes: list[str] = []
    try:
        file_manager = start("file_manager", "microservices.file_manager", ports["file_manager"], env, work)
        servers.append(file_manager)
        gateway = None
        if not args.direct_only:
            try:
                gateway = start("gateway", "microservices.gateway", ports["gateway"], env, work)
                servers.append(gateway)
            except RuntimeError as exc:
                notes.append(f"gateway not measured: {exc}")
        token = signer.token()

        copy_s = disk_copy_seconds(path, storage / "disk-copy.tmp")
        direct_url = f"{file_manager.url}/files/upload"
        run, results = measure(
            "direct", url=direct_url, path=path, token=token, file_manager=file_manager, watch=servers, concurrency=1
        )
        assert results[0]["sha256"] == sha256.hexdigest() and results[0]["size_bytes"] == size
        runs.append(run)
        delete_all(file_manager.url, results, token)
        if gateway is not None:
            try:
                run, results = measure(
                    "through gateway",
                    url=f"{gateway.url}/api/files/upload",
                    path=path,
                    token=token,
                    file_manager=file_manager,
                    watch=servers,
                    concurrency=1,
                )
                assert results[0]["sha256"] == sha256.hexdigest()
                runs.append(run)
                delete_all(file_manager.url, results, token)
            except (RuntimeError, httpx.HTTPError) as exc:
                notes.append(f"gateway upload failed: {exc}")
                gateway = None
        if args.concurrency > 1:
            run, results = measure(
                f"{args.concurrency} at once, direct",
                url=direct_url,
                path=path,
                token=token,
                file_manager=file_manager,
                watch=servers,
                concurrency=args.concurrency,
            )
            runs.append(run)
            delete_all(file_manager.url, results, token)
            if gateway is not None:
                run, results = measure(
                    f"{args.concurrency} at once, gateway",
                    url=f"{gateway.url}/api/files/upload",
                    path=path,
                    token=token,
                    file_manager=file_manager,
                    watch=servers,
                    concurrency=args.concurrency,
                )
                runs.append(run)
                delete_all(file_manager.url, results, token)
    finally:
        for server in reversed(servers):
            stop(server)
        signer.server.shutdown()
        drop_databases(server_url, [database])
        shutil.rmtree(storage, ignore_errors=True)

    report(path=path, size=size, copy_s=copy_s, runs=runs, notes=notes)
    return 0


def report(*, path: Path, size: int, copy_s: float, runs: list[Run], notes: list[str]) -> None:
    copy_rate = size / MB / copy_s
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"\nfile: {path} ({size / MB:.1f} MB); machine: {os.cpu_count()} CPUs, load average {load}")
    print(f"{'disk copy (copy + fsync)':34} {copy_s:7.2f} s {copy_rate:8.1f} MB/s")
    direct_rate = None
    worst_written, worst_memory = 0.0, 0.0
    for run in runs:
        rate = size * run.uploads / MB / run.seconds
        written = run.written_bytes / (size * run.uploads)
        worst_written = max(worst_written, written)
        per_upload = {name: growth / run.uploads for name, growth in run.memory_mb.items()}
        worst_memory = max(worst_memory, *per_upload.values())
        memory = ", ".join(f"{name} +{growth:.1f} MB" for name, growth in run.memory_mb.items())
        cpu = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in run.cpu_s.items())
        relative = f"{rate / copy_rate:6.1%} of disk copy"
        if run.label == "direct":
            direct_rate = rate
        elif run.label == "through gateway" and direct_rate:
            relative += f", {rate / direct_rate:.1%} of direct"
        print(
            f"{run.label:34} {run.seconds:7.2f} s {rate:8.1f} MB/s  ({relative}); file manager wrote "
            f"{written:.3f}x the bytes; peak RSS growth {memory}; CPU {cpu}"
        )
    for note in notes:
        print(f"note: {note}")
    print(f"goal bytes written <= 1.05x: {'met' if worst_written <= 1.05 else 'MISSED'} ({worst_written:.3f}x)")
    print(
        f"goal peak memory growth <= 64 MB per concurrent upload: "
        f"{'met' if worst_memory <= 64 else 'MISSED'} (worst {worst_memory:.1f} MB)"
    )
    gateway = next((r for r in runs if r.label == "through gateway"), None)
    if gateway is not None and direct_rate:
        ratio = size / MB / gateway.seconds / direct_rate
        print(f"goal gateway >= 50 % of direct: {'met' if ratio >= 0.5 else 'MISSED'} ({ratio:.1%})")


if __name__ == "__main__":
    sys.exit(main())
