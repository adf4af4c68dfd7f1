"""Job processor benchmark: 1,000 jobs driven to completion against the Michigan fake.

    .venv/bin/python scripts/bench/jobs.py [--jobs 1000] [--workers 8] [--run-time 1.0] [--poll-interval 0.5]

Uses the PostgreSQL of DATABASE_URL (a database of its own, migrated, dropped at the end). The Michigan fake runs
as a process and is reached over real HTTP; the registry, the user service and the file manager are in-process
stand-ins (`tests/job_processor/inprocess.py`), since what is measured is the job processor's own work. The
worker's steps run exactly as the Celery tasks run them (`processing.submit_job`, `poll_job`, the `sweep` beat
runs), in a pool of `--workers` threads as Celery's thread pool would: every job is enqueued for submission as
`POST /jobs` does, then the sweep hands out due polls until every job has completed and its results are stored.

Prints jobs per second (first submission to last completion) and database queries per job: the sweep's, the poll
steps' (poll, then collect when done), the submissions', and all of them.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command
from sqlalchemy import create_engine, event, func, insert, select
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from microservices.common.localinfra import free_port, wait_for_port  # noqa: E402
from microservices.common.migrate import alembic_config, create_databases, drop_databases  # noqa: E402

TOKEN = "bench-token"
phase = threading.local()
queries: Counter[str] = Counter()
queries_lock = threading.Lock()


def count_query(*_: Any) -> None:
    with queries_lock:
        queries[getattr(phase, "name", "other")] += 1


def in_phase(name: str, step: Callable[[str], str]) -> Callable[[str], str]:
    def run(job_id: str) -> str:
        phase.name = name
        began = time.monotonic()
        try:
            return step(job_id)
        finally:
            phase.name = "other"
            if os.environ.get("BENCH_TRACE"):
                print(f"{name} {job_id[:8]} {time.monotonic() - began:.3f} s", file=sys.stderr)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--run-time", type=float, default=1.0, help="seconds each fake Michigan job runs")
    parser.add_argument("--poll-interval", type=float, default=0.5, help="seconds between two polls of a job")
    args = parser.parse_args()

    server = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    name = f"bench_jobs_{os.getpid()}"
    drop_databases(server, [name])
    create_databases(server, [name])
    url = make_url(server).set(database=name, drivername="postgresql+psycopg2").render_as_string(hide_password=False)
    command.upgrade(alembic_config("job_processor", url), "head")
    os.environ["JOB_PROCESSOR_DATABASE_URL"] = url
    os.environ["JOB_PROCESSOR_DATABASE_POOL_SIZE"] = str(args.workers + 2)
    scratch = tempfile.mkdtemp(prefix="bench-jobs-")
    os.environ["JOB_PROCESSOR_VAR_DIR"] = scratch

    from microservices.job_processor import processing, states
    from microservices.job_processor.crypto import encrypt, make_fernet
    from microservices.job_processor.models import Job
    from tests.job_processor.inprocess import FileManagerStub, peers_factory
    from tests.job_processor.stubs import PeerStub

    port = free_port()
    fake = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.michigan", "--port", str(port), "--token", TOKEN,
         "--job-run-time", str(args.run_time), "--max-concurrent-jobs", "1000000", "--download-limit", "-1"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    monitor = create_engine(url)
    try:
        wait_for_port(port, timeout_s=30)
        processing.runtime.cache_clear()
        runtime = processing.runtime()
        runtime.settings.min_poll_interval_s = args.poll_interval
        event.listen(runtime.engine, "before_cursor_execute", count_query)
        stub = PeerStub.default()
        stub.services[1]["base_url"] = f"http://127.0.0.1:{port}"
        stub.service_credentials[1] = TOKEN
        files = FileManagerStub(inputs={"in1": ROOT / "tests" / "data" / "sim-1mb" / "target.vcf.gz"})
        processing.peers_factory = peers_factory(stub, files, {})

        password = encrypt(make_fernet(runtime.settings), "bench-password")
        now = datetime.now(UTC)
        ids = [uuid.uuid4() for _ in range(args.jobs)]
        rows = [
            {"id": job_id, "user_id": 1, "name": f"bench {i}", "service_id": 1, "service_name": "Michigan fake",
             "api_type": "michigan", "reference_panel_id": 11, "panel_remote_id": "apps@hapmap-2@2.0.0",
             "panel_parameters": {}, "build": "hg19", "phasing": True, "population": "eur", "mode": "imputation",
             "input_file_ids": ["in1"], "input_files": [{"id": "in1", "filename": "chr20.vcf.gz", "size_bytes": 4343}],
             "status": states.QUEUED, "progress": 0, "result_files": [], "failures": 0,
             "poll_interval_s": args.poll_interval, "result_password_encrypted": password,
             "created_at": now, "updated_at": now}
            for i, job_id in enumerate(ids)
        ]  # fmt: skip
        with monitor.begin() as connection:
            connection.execute(insert(Job), rows)

        submit = in_phase("submit", processing.submit_job)
        poll = in_phase("poll", processing.poll_job)
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=args.workers) as pool:
            pending = [pool.submit(submit, str(job_id)) for job_id in ids]  # what POST /jobs enqueues
            sweeps = 0
            while True:
                wait(pending)
                for future in pending:
                    future.result()
                with monitor.connect() as connection:
                    live = connection.execute(
                        select(func.count()).select_from(Job).where(Job.status.not_in(states.TERMINAL))
                    ).scalar_one()
                if live == 0:
                    break
                phase.name = "sweep"
                work = processing.sweep(limit=args.jobs)
                phase.name = "other"
                sweeps += 1
                pending = [pool.submit(poll if task == "jobs.poll" else submit, job_id) for task, job_id in work]
                if not work:
                    time.sleep(0.1)
        elapsed = time.monotonic() - started
        with monitor.connect() as connection:
            by_status = dict(connection.execute(select(Job.status, func.count()).group_by(Job.status)).all())
            results = connection.execute(select(func.sum(func.json_array_length(Job.result_files)))).scalar_one()
        n = args.jobs
        print(f"jobs: {n}, workers: {args.workers}, fake run time: {args.run_time:g} s, poll interval: "
              f"{args.poll_interval:g} s")  # fmt: skip
        print(f"final states: {by_status}; result files stored: {results} ({len(files.results)} uploads)")
        print(f"elapsed: {elapsed:.1f} s; throughput: {n / elapsed:.1f} jobs/s; sweeps: {sweeps}")
        total = sum(queries.values())
        poller = queries["sweep"] + queries["poll"]
        print(
            f"database queries per job: sweep {queries['sweep'] / n:.2f}, poll and collect {queries['poll'] / n:.2f}, "
            f"submit {queries['submit'] / n:.2f}, poller (sweep + poll) {poller / n:.2f}, all {total / n:.2f}"
        )
    finally:
        fake.terminate()
        fake.wait(10)
        monitor.dispose()
        try:
            from microservices.job_processor import processing as loaded

            loaded.runtime().engine.dispose()
        except Exception as exc:  # the database may never have been reached
            print(f"(engine not disposed: {exc})", file=sys.stderr)
        drop_databases(server, [name])


if __name__ == "__main__":
    main()
