"""A real GA4GH WES server for tests: sapporo (PyPI) on a free loopback port, running CWL with the host's cwltool.

sapporo's bundled `run.sh` runs every engine with `docker run`; the one written here replaces only the body of
`run_cwltool()` so that cwltool runs on the host (protocols/ga4gh-wes.md §10), where the workflow's tools
(`java -jar /usr/share/beagle/beagle.jar`, `bcftools`) are installed.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from microservices.common.localinfra import free_port

PREFIX = "/ga4gh/wes/v1"
TERMINAL_STATES = {"COMPLETE", "EXECUTOR_ERROR", "SYSTEM_ERROR", "CANCELED", "DELETED"}

NATIVE_CWLTOOL = """function run_cwltool() {
    cd "${exe_dir}"
    export TMPDIR="${tmp_dir}"
    local -a cmd_arr=(cwltool --outdir "${outputs_dir}")
    _append_engine_params cmd_arr
    cmd_arr+=("${wf_url}" "${wf_params}")
    _write_and_run cmd_arr
}
"""


def native_run_sh() -> str:
    """sapporo's run.sh with cwltool run on the host instead of in a container."""
    import sapporo

    original = (Path(sapporo.__file__).parent / "run.sh").read_text()
    patched, count = re.subn(r"function run_cwltool\(\) \{.*?\n\}\n", NATIVE_CWLTOOL, original, flags=re.S)
    assert count == 1, "sapporo's run.sh changed layout: run_cwltool() not found exactly once"
    return patched


@dataclass
class SapporoServer:
    """A running sapporo; `base_url` is the WES base (with the /ga4gh/wes/v1 prefix)."""

    process: subprocess.Popen[bytes]
    work: Path
    port: int

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{PREFIX}"

    @property
    def runs_dir(self) -> Path:
        return self.work / "runs"

    def log_tail(self, lines: int = 40) -> str:
        path = self.work / "server.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def run_dir(self, run_id: str) -> Path:
        return self.runs_dir / run_id[:2] / run_id

    def submitted_run_ids(self) -> list[str]:
        """Every run this server has accepted (from its run directory, whatever its state)."""
        return sorted(p.name for p in self.runs_dir.glob("*/*") if p.is_dir())

    def stop_runs(self) -> None:
        """SIGTERM the run.sh of every unfinished run (stopping sapporo does not stop them)."""
        pids = []
        for pid_file in self.runs_dir.glob("*/*/run.pid"):
            state_file = pid_file.parent / "state.txt"
            state = state_file.read_text().strip() if state_file.exists() else ""
            if state in TERMINAL_STATES:
                continue
            with contextlib.suppress(ValueError, ProcessLookupError, PermissionError):
                pid = int(pid_file.read_text().strip())
                os.kill(pid, signal.SIGTERM)
                pids.append(pid)
        deadline = time.monotonic() + 15
        for pid in pids:
            while time.monotonic() < deadline:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.1)


@contextlib.contextmanager
def start_sapporo(work: Path, *, cancel_grace_s: int = 2, timeout_s: float = 60.0) -> Iterator[SapporoServer]:
    """Start sapporo in `work`, wait until service-info answers, and stop it and its runs at the end."""
    runs = work / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    run_sh = work / "run-native.sh"
    run_sh.write_text(native_run_sh())
    run_sh.chmod(0o755)
    import cwltool

    cwltool_version = getattr(cwltool, "__version__", None) or _cwltool_version()
    service_info = work / "service_info.json"
    service_info.write_text(
        json.dumps(
            {
                "workflow_type_versions": {"CWL": {"workflow_type_version": ["v1.0", "v1.1", "v1.2"]}},
                "workflow_engine_versions": {"cwltool": {"workflow_engine_version": [cwltool_version]}},
                "default_workflow_engine_parameters": {},
            }
        )
    )
    port = free_port()
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}"}
    log = (work / "server.log").open("ab")
    process = subprocess.Popen(
        [
            str(Path(bin_dir) / "sapporo"),
            *("--host", "127.0.0.1", "--port", str(port)),
            *("--run-dir", str(runs.resolve()), "--run-sh", str(run_sh.resolve())),
            *("--service-info", str(service_info.resolve()), "--url-prefix", PREFIX),
            *("--cancel-grace-seconds", str(cancel_grace_s)),
        ],
        env=env,
        cwd=work,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    log.close()
    server = SapporoServer(process=process, work=work, port=port)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"sapporo exited with {process.returncode}:\n{server.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{server.base_url}/service-info", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"sapporo did not answer within {timeout_s:g} s:\n{server.log_tail()}")
            time.sleep(0.1)
        yield server
    finally:
        server.stop_runs()
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


def _cwltool_version() -> str:
    from importlib.metadata import version

    return version("cwltool")
