"""A real server in a subprocess for tests and benchmarks: ``sdze serve`` on a free loopback port."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from .local_ray import descendant_pids

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """``with ServerProcess(data_dir, env={...}) as srv: httpx.get(srv.url + "/healthz")``."""

    def __init__(self, data_dir: Path, env: dict[str, str] | None = None, port: int | None = None):
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONUNBUFFERED": "1", **(env or {})}
        self.env.pop("RAY_ADDRESS", None)
        self.proc: subprocess.Popen | None = None
        self.log_path = self.data_dir / f"server-{self.port}.log"
        self._known: set[int] = set()

    def start(self, timeout: float = 180.0) -> ServerProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        cmd = [
            sys.executable,
            "-m",
            "service.cli",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--data-dir",
            str(self.data_dir),
            "--log-level",
            "warning",
        ]
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    self._known.update(descendant_pids(self.proc.pid))
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        self.stop()
        raise TimeoutError(f"server not ready after {timeout}s:\n{self.log_tail()}")

    def log_tail(self, n: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def kill(self) -> None:
        """SIGKILL the server process (a crash), then its leftover Ray processes."""
        if self.proc is None:
            return
        self._known.update(descendant_pids(self.proc.pid))
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self._reap()

    def stop(self, timeout: float = 30.0) -> None:
        if self.proc is None:
            return
        self._known.update(descendant_pids(self.proc.pid))
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reap()

    def _reap(self) -> None:
        for pid in self._known:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        self._known.clear()
        self.proc = None

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_for_job(client, job_id: str, cond, timeout: float = 240.0, poll_s: float = 0.25) -> dict:
    """Poll ``client.get(job_id)`` until ``cond(job)`` holds; AssertionError with the last state on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(job_id)
        if cond(job):
            return job
        time.sleep(poll_s)
    raise AssertionError(f"timed out waiting on {job_id}: {client.get(job_id)}")
