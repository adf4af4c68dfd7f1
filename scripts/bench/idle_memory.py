"""Idle memory of the platform: the resident set of every component's processes, and their total.

    .venv/bin/python scripts/bench/idle_memory.py [--settle 15]     # starts the platform, measures, stops it
    .venv/bin/python scripts/bench/idle_memory.py --attach PID      # a running `scripts/run.py` (its PID)

Without --attach it starts every process exactly as the local run does (the list in
microservices/common/processes.py) on free ports, against fresh databases on `DATABASE_URL` and a Redis of its
own (the test harness's Platform), waits until all are healthy and then `--settle` seconds, and reads each
process tree's RSS. Goals (foundation issue): each FastAPI service at most 80 MB idle, all Python processes
together under 695 MB.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterable
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from microservices.common.settings import FASTAPI_SERVICES  # noqa: E402

SERVICE_LIMIT_MB = 80.0
TOTAL_LIMIT_MB = 695.0
MB = 1024 * 1024


def tree_rss(process: psutil.Process) -> float:
    """RSS in MB of a process and all its descendants (uvicorn or Celery children, if any)."""
    total = 0
    for member in [process, *process.children(recursive=True)]:
        try:
            total += member.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total / MB


def is_python(process: psutil.Process) -> bool:
    """True for a Python interpreter (the platform's components), false for PostgreSQL, Redis, nginx."""
    try:
        return "python" in Path(process.exe()).name or "python" in process.name()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def name_of(process: psutil.Process, names: Iterable[str]) -> str:
    """The component a process of `scripts/run.py` is, from its command line."""
    cmdline = " ".join(process.cmdline())
    for name in names:
        if f"microservices.{name} " in cmdline + " ":
            return name
    if "celery" in cmdline:
        return "django-worker" if "federated_imputation" in cmdline else "job-worker"
    if "federated_imputation" in cmdline:
        return "django"
    return Path(process.cmdline()[1] if len(process.cmdline()) > 1 else process.name()).name


def report(rows: list[tuple[str, int, float]], *, extra_python: list[tuple[str, int, float]]) -> int:
    """Print the table and the goals; exit status 0 when both are met."""
    print(f"{'component':<22} {'pid':>7} {'RSS MB':>8}  goal")
    failures = 0
    for name, pid, rss in rows:
        goal = ""
        if name in FASTAPI_SERVICES:
            met = rss <= SERVICE_LIMIT_MB
            failures += not met
            goal = f"{'met' if met else 'MISSED'} (<= {SERVICE_LIMIT_MB:g} MB)"
        print(f"{name:<22} {pid:>7} {rss:8.1f}  {goal}")
    for name, pid, rss in extra_python:
        print(f"{name:<22} {pid:>7} {rss:8.1f}  (supervisor)")
    total = sum(r for _, _, r in rows) + sum(r for _, _, r in extra_python)
    met = total < TOTAL_LIMIT_MB
    failures += not met
    print(f"{'all Python processes':<22} {'':>7} {total:8.1f}  {'met' if met else 'MISSED'} (< {TOTAL_LIMIT_MB:g} MB)")
    return 1 if failures else 0


def attach(pid: int) -> int:
    """Measure the components of a running `scripts/run.py`."""
    supervisor = psutil.Process(pid)
    rows = []
    for child in supervisor.children():
        if is_python(child):
            rows.append((name_of(child, FASTAPI_SERVICES), child.pid, tree_rss(child)))
    return report(sorted(rows), extra_python=[("scripts/run.py", pid, supervisor.memory_info().rss / MB)])


def start_and_measure(settle_s: float) -> int:
    """Start the platform as the local run does, let it idle, measure, and stop it."""
    from tests.harness import Infrastructure, Platform

    infra = Infrastructure.start()
    platform = Platform(infra)
    try:
        started = time.monotonic()
        platform.start()
        print(f"platform healthy after {time.monotonic() - started:.1f} s; idling {settle_s:g} s", flush=True)
        time.sleep(settle_s)
        rows = []
        for name, popen in platform.supervisor.processes.items():
            process = psutil.Process(popen.pid)
            if is_python(process):
                rows.append((name, popen.pid, tree_rss(process)))
        return report(rows, extra_python=[])
    finally:
        platform.stop()
        infra.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--attach", type=int, metavar="PID", help="the PID of a running scripts/run.py")
    parser.add_argument("--settle", type=float, default=15.0, help="seconds to idle before measuring")
    args = parser.parse_args()
    if args.attach:
        return attach(args.attach)
    return start_and_measure(args.settle)


if __name__ == "__main__":
    raise SystemExit(main())
