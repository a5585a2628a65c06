"""The compose/KubeRay topology rehearsed without containers: a 2-node Ray cluster, PostgreSQL and ``sdze serve``.

What runs, each as its own process group in a private temp dir, torn down at the end (nothing else is stopped:
no ``ray stop``, which would kill every Ray cluster of this user on the machine):
- a Ray head (``ray start --head --block``) and a Ray worker (``ray start --address=... --block``), one CPU each,
  with token authentication (RAY_AUTH_MODE=token, a shared RAY_AUTH_TOKEN), as docker/compose.yaml configures them;
- a throwaway PostgreSQL cluster (initdb + pg_ctl from Debian's packages, as a non-root user when run as root),
  password-protected, listening on 127.0.0.1 only;
- ``sdze serve`` attached with RAY_ADDRESS to the head's GCS, the job store at SDZE_DATABASE_URL (PostgreSQL),
  artifacts in SDZE_ARTIFACTS_DIR (the "shared" folder), bearer tokens in SDZE_TOKENS.
A 2-worker job (d=20, width 16, 40 steps) then runs end to end through the REST API.

Ray binds its node address itself: on Linux it resolves 127.0.0.1 to the machine's own primary address, so the
cluster's sockets sit on this machine's interface, never on another host.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.ray]

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ray_ports() -> list[str]:
    """Every port a Ray node would otherwise take from fixed defaults (8265, 10001, ...), chosen free."""
    names = [
        "dashboard-port",
        "metrics-export-port",
        "dashboard-agent-listen-port",
        "dashboard-agent-grpc-port",
        "runtime-env-agent-port",
        "node-manager-port",
        "object-manager-port",
    ]
    return [f"--{n}={_free_port()}" for n in names]


def _pg_bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    exe = shutil.which("initdb")
    return Path(exe).parent if exe else None


def _wait(pred, timeout: float, what: str, proc: subprocess.Popen | None = None, log: Path | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = log.read_text()[-3000:] if log and log.exists() else ""
            raise AssertionError(f"{what}: process exited with {proc.returncode}\n{tail}")
        try:
            value = pred()
        except Exception:
            value = None
        if value:
            return value
        time.sleep(0.5)
    tail = log.read_text()[-3000:] if log and log.exists() else ""
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n{tail}")


class Processes:
    """Process groups started by this test; stopped (TERM, then KILL) in reverse order."""

    def __init__(self) -> None:
        self.groups: list[tuple[float, subprocess.Popen]] = []

    def start(self, cmd: list[str], env: dict, log: Path, grace: float = 1.0) -> subprocess.Popen:
        """``grace``: seconds between SIGTERM and SIGKILL at teardown (a Ray node drains for up to 30 s)."""
        with log.open("wb") as fh:
            p = subprocess.Popen(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
        self.groups.append((grace, p))
        return p

    def kill(self, p: subprocess.Popen) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGKILL)
        p.wait(10)

    def stop_all(self) -> None:
        for grace, p in reversed(self.groups):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGTERM)
            deadline = time.monotonic() + grace
            while p.poll() is None and time.monotonic() < deadline:
                time.sleep(0.1)
            # the group also holds the daemons `ray start` spawned (gcs_server, raylet, workers)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(10)


def _leftovers(marker: str) -> list[int]:
    """Pids whose command line mentions our private temp dir (Ray daemons that left our process groups)."""
    pids = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            if marker in (d / "cmdline").read_bytes().decode(errors="replace"):
                pids.append(int(d.name))
        except OSError:
            continue
    return pids


@contextlib.contextmanager
def postgres(tmp: Path):
    """A throwaway PostgreSQL cluster on 127.0.0.1:<free port>; yields its SQLAlchemy URL."""
    bindir = _pg_bindir()
    if bindir is None:
        msg = "PostgreSQL server binaries not installed (scripts/system_deps.sh installs Debian's postgresql)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    as_user: list[str] = []
    pgdir = tmp / "pg"
    pgdir.mkdir()
    if os.geteuid() == 0:  # postgres refuses to run as root
        user = "postgres" if _has_user("postgres") else "nobody"
        pw = pwd.getpwnam(user)
        os.chown(pgdir, pw.pw_uid, pw.pw_gid)
        as_user = ["runuser", "-u", user, "--"]
    password = secrets.token_hex(12)
    pwfile = pgdir / "pwfile"
    pwfile.write_text(password + "\n")
    if as_user:
        os.chown(pwfile, pw.pw_uid, pw.pw_gid)
    data, log = pgdir / "data", pgdir / "postgres.log"
    run = dict(check=True, capture_output=True, text=True, timeout=120)
    subprocess.run(
        [*as_user, str(bindir / "initdb"), "-D", str(data), "-U", "sdze", "--auth=scram-sha-256",
         f"--pwfile={pwfile}", "--encoding=UTF8", "--no-sync"],
        **run,
    )  # fmt: skip
    port = _free_port()
    opts = f"-p {port} -k {pgdir} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run(
        [*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(log), "-w", "start"], **run
    )
    try:
        import psycopg

        with psycopg.connect(
            host="127.0.0.1", port=port, user="sdze", password=password, dbname="postgres", autocommit=True
        ) as conn:
            conn.execute("CREATE DATABASE sdze")
        yield f"postgresql+psycopg://sdze:{password}@127.0.0.1:{port}/sdze"
    finally:
        subprocess.run(
            [*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
            capture_output=True,
            timeout=60,
        )


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def test_two_node_ray_cluster_postgres_and_service_end_to_end() -> None:
    import httpx
    import psycopg

    import service.app  # noqa: F401  (fail loudly, not skip, if the service or the runner cannot be imported)
    import worker.runner  # noqa: F401

    tmp = Path(tempfile.mkdtemp(prefix="sdze-rh-", dir="/tmp"))  # short: Ray's socket paths must stay < 108 bytes
    os.chmod(tmp, 0o755)
    shared = tmp / "shared"  # stands in for the volume every node mounts (compose sdze-shared, KubeRay RWX PVC)
    data_dir = tmp / "service-data"
    procs = Processes()
    ray_token = secrets.token_hex(32)
    api_token = "api-" + secrets.token_urlsafe(24)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "SDZE_"))}
    (tmp / "home").mkdir()
    env.update(
        HOME=str(tmp / "home"),  # Ray reads/writes ~/.ray (auth token): keep it away from the user's own clusters
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        RAY_AUTH_MODE="token",
        RAY_AUTH_TOKEN=ray_token,
        RAY_USAGE_STATS_ENABLED="0",
        PYTHONUNBUFFERED="1",
    )
    gcs_port = _free_port()
    common = ["--block", "--num-cpus=1", "--num-gpus=0", f"--temp-dir={tmp / 'ray'}", "--object-store-memory=100000000"]
    try:
        with postgres(tmp) as db_url:
            t0 = time.monotonic()
            head_log = tmp / "ray-head.log"
            head = procs.start(
                [str(BIN / "ray"), "start", "--head", f"--port={gcs_port}", "--include-dashboard=false",
                 f"--ray-client-server-port={_free_port()}", "--disable-usage-stats", *common, *_ray_ports()],
                env,
                head_log,
            )  # fmt: skip
            health = [str(BIN / "ray"), "health-check", f"--address=127.0.0.1:{gcs_port}"]
            _wait(
                lambda: subprocess.run(health, env=env, capture_output=True, timeout=30).returncode == 0,
                120,
                "the Ray head",
                head,
                head_log,
            )

            def start_worker(attempt: int) -> tuple[subprocess.Popen, Path]:
                log = tmp / f"ray-worker-{attempt}.log"
                cmd = [str(BIN / "ray"), "start", f"--address=127.0.0.1:{gcs_port}", "--disable-usage-stats", *common,
                       *_ray_ports()]  # fmt: skip
                return procs.start(cmd, env, log), log

            worker, worker_log = start_worker(1)
            # the service: configured like the compose head (env vars), attached to the head's own GCS
            port = _free_port()
            serve_env = dict(
                env,
                RAY_ADDRESS=f"127.0.0.1:{gcs_port}",
                SDZE_DATABASE_URL=db_url,
                SDZE_ARTIFACTS_DIR=str(shared / "artifacts"),
                SDZE_TOKENS=api_token,
                SDZE_MAX_CONCURRENT_JOBS="1",
            )
            serve_log = tmp / "sdze-serve.log"
            serve = procs.start(
                [str(BIN / "sdze"), "serve", "--host", "127.0.0.1", "--port", str(port), "--data-dir", str(data_dir)],
                serve_env,
                serve_log,
                grace=10.0,
            )
            base = f"http://127.0.0.1:{port}"
            auth = {"Authorization": f"Bearer {api_token}"}
            with httpx.Client(base_url=base, timeout=30) as http:
                _wait(lambda: http.get("/healthz").status_code == 200, 90, "/healthz", serve, serve_log)
                _wait(lambda: http.get("/readyz", headers=auth).status_code == 200, 120, "/readyz", serve, serve_log)
                # both Ray nodes are up before the job asks for one CPU on each. One retry: Ray gives a new
                # node's raylet a fixed 30 s to register with the GCS, which a heavily loaded machine can exceed.
                for attempt in (1, 2):
                    try:
                        log = worker_log
                        _wait(lambda log=log: "Ray runtime started" in log.read_text(), 90, "the Ray worker node",
                              worker, log)  # fmt: skip
                        break
                    except AssertionError:
                        if attempt == 2 or worker.poll() is None:
                            raise
                        procs.kill(worker)
                        worker, worker_log = start_worker(2)
                startup_s = time.monotonic() - t0

                spec = {
                    "problem": {"name": "poisson_two_body", "dim": 20, "seed": 0},
                    "model": {"width": 16, "depth": 3},
                    "solver": {"method": "sdze", "steps": 40, "batch_size": 32, "samples": 4},
                    "eval": {"test_points": 256, "every": 20, "sample_points": 64},
                    "resources": {"workers": 2},
                    "seed": 1,
                }
                assert http.post("/v1/jobs", json=spec).status_code == 401, "bearer token required"
                r = http.post("/v1/jobs", json=spec, headers=auth)
                assert r.status_code == 202, r.text
                job_id = r.json()["id"]

                def finished():
                    j = http.get(f"/v1/jobs/{job_id}", headers=auth).json()
                    return j if j["state"] in ("succeeded", "failed", "cancelled") else None

                job = _wait(finished, 180, f"job {job_id}", serve, serve_log)
                assert job["state"] == "succeeded", json.dumps(job, indent=2)[:3000]

                names = {a["name"] for a in http.get(f"/v1/jobs/{job_id}/artifacts", headers=auth).json()["data"]}
                assert {"model.safetensors", "metrics.json", "history.csv", "samples.npz"} <= names
                metrics = http.get(f"/v1/jobs/{job_id}/artifacts/metrics.json", headers=auth).json()

            # the job ran on both Ray nodes, one worker each, exchanging seeds and scalars only
            assert len(metrics["ray_nodes"]) == 2, metrics.get("ray_nodes")
            assert metrics["steps_done"] == 40 and metrics["status"] == "succeeded"
            # artifacts landed in the configured shared folder, not in the service's local data dir
            written = {p.name for p in (shared / "artifacts").rglob("*") if p.is_file()}
            assert {"model.safetensors", "metrics.json", "history.csv", "samples.npz"} <= written
            assert not any(p.name == "model.safetensors" for p in data_dir.rglob("*"))
            # and the job record lives in PostgreSQL
            with psycopg.connect(db_url.replace("postgresql+psycopg://", "postgresql://")) as conn:
                tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname='public'")}
                assert "jobs" in tables, tables
                row = conn.execute("SELECT state FROM jobs WHERE id = %s", (job_id,)).fetchone()
                assert row is not None and row[0] == "succeeded"
            print(f"rehearsal: cluster+service up in {startup_s:.1f}s, total {time.monotonic() - t0:.1f}s")
    finally:
        procs.stop_all()
        stray = _leftovers(str(tmp))
        for pid in stray:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(tmp, ignore_errors=True)
    assert not stray, f"processes outlived their process groups: {stray}"
