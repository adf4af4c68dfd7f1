"""The platform's processes: how each is started, and a supervisor that starts, watches and stops them.

One list serves the local run (`scripts/run.sh`) and the integration tests, so both start exactly what compose
starts.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from microservices.common.settings import DEFAULT_PORTS, FASTAPI_SERVICES


@dataclass(frozen=True)
class Component:
    """One process of the platform."""

    name: str
    argv: tuple[str, ...]
    port: int | None = None
    env: Mapping[str, str] = field(default_factory=dict)

    @property
    def health_url(self) -> str | None:
        return f"http://127.0.0.1:{self.port}/health" if self.port else None


def port_env_name(name: str) -> str:
    """The variable that moves a component's port, e.g. GATEWAY_PORT."""
    return f"{name.upper()}_PORT"


def component_env(ports: Mapping[str, int]) -> dict[str, str]:
    """Variables every process needs to find its peers on the given ports."""
    env = {port_env_name(name): str(port) for name, port in ports.items()}
    env.update({f"{name.upper()}_URL": f"http://127.0.0.1:{port}" for name, port in ports.items()})
    return env


def platform_components(ports: Mapping[str, int] | None = None, *, python: str = sys.executable) -> list[Component]:
    """Every process of the platform, in start order."""
    ports = {**DEFAULT_PORTS, **(ports or {})}
    components = [Component(name, (python, "-m", f"microservices.{name}"), ports[name]) for name in FASTAPI_SERVICES]
    components.append(Component("django", (python, "-m", "federated_imputation"), ports["django"]))
    # Locally, beat runs inside the one job worker (`--beat`): a process fewer on a laptop. Compose runs it as a
    # service of its own, as it must be once workers are scaled out.
    components.append(
        Component(
            "job-worker",
            (python, "-m", "celery", "-A", "microservices.job_processor.worker", "worker", "--pool", "threads",
             "--concurrency", "4", "--loglevel", "INFO", "--hostname", "jobs@%h", "--beat",
             "--schedule", str(Path(os.environ.get("VAR_DIR", "var")) / "celerybeat-schedule")),
        )
    )  # fmt: skip
    components.append(
        Component(
            "django-worker",
            (python, "-m", "celery", "-A", "federated_imputation", "worker", "--pool", "threads",
             "--concurrency", "2", "--loglevel", "INFO", "--hostname", "django@%h"),
        )
    )  # fmt: skip
    return components


class Supervisor:
    """Starts processes in their own process groups with logs in files, and stops them all cleanly."""

    def __init__(self, *, log_dir: Path, env: Mapping[str, str], cwd: Path | None = None) -> None:
        self.log_dir = log_dir
        self.env = dict(env)
        self.cwd = cwd
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        log_dir.mkdir(parents=True, exist_ok=True)

    def start(self, component: Component) -> subprocess.Popen[bytes]:
        """Start one component, its output appended to `<log_dir>/<name>.log`."""
        log = open(self.log_dir / f"{component.name}.log", "ab")  # noqa: SIM115 - the child owns it
        process = subprocess.Popen(
            component.argv,
            env={**self.env, **component.env},
            cwd=self.cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        self.processes[component.name] = process
        return process

    def start_all(self, components: Iterable[Component]) -> None:
        for component in components:
            self.start(component)

    def stop(self, name: str, *, timeout_s: float = 15.0, sig: int = signal.SIGTERM) -> None:
        """Stop one component and wait for it; SIGKILL if it does not go in time."""
        process = self.processes.pop(name, None)
        if process is None or process.poll() is not None:
            return
        _signal_group(process, sig)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _signal_group(process, signal.SIGKILL)
            process.wait(timeout=5)

    def stop_all(self, *, timeout_s: float = 15.0) -> None:
        """Send SIGTERM to every component at once, wait, and SIGKILL the ones still there."""
        for process in self.processes.values():
            if process.poll() is None:
                _signal_group(process, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(process, signal.SIGKILL)
                process.wait(timeout=5)
        self.processes.clear()

    def exited(self) -> dict[str, int]:
        """Components that have exited, with their exit codes."""
        return {name: code for name, p in self.processes.items() if (code := p.poll()) is not None}

    def wait_healthy(self, components: Iterable[Component], *, timeout_s: float = 60.0) -> dict[str, float]:
        """Wait until every component with a port answers 200 on /health; return seconds each took."""
        pending = {c.name: c.health_url for c in components if c.health_url}
        started = time.monotonic()
        ready: dict[str, float] = {}
        with httpx.Client(timeout=2.0) as client:
            while pending:
                for name, url in list(pending.items()):
                    assert url is not None
                    try:
                        if client.get(url).status_code == 200:
                            ready[name] = time.monotonic() - started
                            del pending[name]
                    except httpx.HTTPError:
                        pass
                dead = {n: c for n, c in self.exited().items() if n in pending}
                if dead:
                    raise RuntimeError(f"exited before becoming healthy: {dead}; see {self.log_dir}")
                if time.monotonic() - started > timeout_s:
                    raise TimeoutError(f"not healthy after {timeout_s:g} s: {sorted(pending)}; see {self.log_dir}")
                time.sleep(0.2)
        return ready


def _signal_group(process: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)
