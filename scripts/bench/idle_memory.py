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


def tree_memory(process: psutil.Process) -> tuple[float, float]:
    """RSS and PSS in MB of a process and all its descendants (uvicorn or Celery children, if any).

    RSS counts every shared library page once per process; PSS divides shared pages among the processes that
    map them, so the PSS of all processes adds up to the memory the platform really takes.
    """
    rss = pss = 0
    for member in [process, *process.children(recursive=True)]:
        try:
            info = member.memory_full_info()
        except psutil.NoSuchProcess:
            continue
        rss += info.rss
        pss += getattr(info, "pss", info.rss)
    return rss / MB, pss / MB


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
    if "aiosmtpd" in cmdline:
        return "smtp (mail catcher)"
    if "celery" in cmdline:
        return "django-worker" if "federated_imputation" in cmdline else "job-worker"
    if "federated_imputation" in cmdline:
        return "django"
    return Path(process.cmdline()[1] if len(process.cmdline()) > 1 else process.name()).name


Row = tuple[str, int, float, float]


def report(rows: list[Row], *, extra_python: list[Row]) -> int:
    """Print the table and the goals (judged on RSS, the stricter figure); exit status 0 when both are met."""
    print(f"{'component':<22} {'pid':>7} {'RSS MB':>8} {'PSS MB':>8}  goal (RSS)")
    failures = 0
    for name, pid, rss, pss in rows:
        goal = ""
        if name in FASTAPI_SERVICES:
            met = rss <= SERVICE_LIMIT_MB
            failures += not met
            goal = f"{'met' if met else 'MISSED'} (<= {SERVICE_LIMIT_MB:g} MB)"
        print(f"{name:<22} {pid:>7} {rss:8.1f} {pss:8.1f}  {goal}")
    for name, pid, rss, pss in extra_python:
        print(f"{name:<22} {pid:>7} {rss:8.1f} {pss:8.1f}  (supervisor)")
    total_rss = sum(r[2] for r in [*rows, *extra_python])
    total_pss = sum(r[3] for r in [*rows, *extra_python])
    met = total_rss < TOTAL_LIMIT_MB
    failures += not met
    by_pss = "met" if total_pss < TOTAL_LIMIT_MB else "MISSED"
    print(
        f"{'all Python processes':<22} {'':>7} {total_rss:8.1f} {total_pss:8.1f}  "
        f"{'met' if met else 'MISSED'} (< {TOTAL_LIMIT_MB:g} MB; by PSS {by_pss})"
    )
    return 1 if failures else 0


def attach(pid: int) -> int:
    """Measure the components of a running `scripts/run.py`."""
    supervisor = psutil.Process(pid)
    rows = []
    for child in supervisor.children():
        if is_python(child):
            rows.append((name_of(child, FASTAPI_SERVICES), child.pid, *tree_memory(child)))
    own = supervisor.memory_full_info()
    return report(sorted(rows), extra_python=[("scripts/run.py", pid, own.rss / MB, getattr(own, "pss", own.rss) / MB)])


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
                rows.append((name, popen.pid, *tree_memory(process)))
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
