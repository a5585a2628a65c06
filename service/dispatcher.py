"""Starts queued jobs on Ray within the concurrency limit and records what they do.

One thread per running job calls ``worker.runner.solve_on_ray`` (blocking); its progress callback writes the
latest progress into the store (every evaluation, and step updates at most every ``progress_interval_s``) and
its ``should_stop`` answers cancel requests and server shutdown. On start-up, jobs left ``running`` by a
dead server are re-queued; they resume from the checkpoint in their artifacts folder.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import threading
import time
import traceback
from dataclasses import asdict
from pathlib import Path
from typing import Any

from sdze_core.spec import JobSpec

from .admission import Capacity, capacity_from_ray, waiting_reason
from .job_store import Job, JobStore
from .local_ray import LocalRay
from .reasons import one_line, write_error_log
from .settings import Settings

log = logging.getLogger("sdze.service")
CAPACITY_EVERY_S = 2.0  # how often the dispatcher re-reads the cluster's resources

MEDIA_TYPES = {
    ".safetensors": "application/octet-stream",
    ".json": "application/json",
    ".csv": "text/csv",
    ".png": "image/png",
    ".npz": "application/octet-stream",
    ".npy": "application/x-npy",
    ".txt": "text/plain",
    ".log": "text/plain",
}


def media_type(name: str) -> str:
    return MEDIA_TYPES.get(Path(name).suffix, "application/octet-stream")


def scan_artifacts(out_dir: Path) -> list[dict]:
    """Top-level files of a job folder (the checkpoint folder is internal) with size, sha256, media type."""
    items = []
    if not out_dir.is_dir():
        return items
    for p in sorted(out_dir.iterdir()):
        if not p.is_file() or p.name.endswith(".tmp"):
            continue
        h = hashlib.sha256()
        with p.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        items.append(
            {"name": p.name, "size": p.stat().st_size, "sha256": h.hexdigest(), "media_type": media_type(p.name)}
        )
    return items


class Dispatcher:
    """Runs jobs from the store on Ray; ``start()`` connects to Ray and reconciles, then dispatches."""

    def __init__(self, store: JobStore, settings: Settings):
        self.store = store
        self.settings = settings
        self.after_connect: Any = None  # called once connected to Ray (the app restores its signal handlers)
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._cancel: set[str] = set()
        self._running: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._started_ray = False
        self._local_ray = LocalRay()  # the processes of a Ray we started, ended with us
        self._needs: dict[str, tuple[float, float]] = {}  # running jobs' (CPUs, GPUs) on Ray
        self._waiting: dict[str, str] = {}  # queued job → the reason last stored (a store write only on change)
        self.capacity: Capacity | None = None  # the cluster as last read (None until connected)
        self._capacity_t = 0.0
        self.ready = False
        self.error: str | None = None

    # ---------------------------------------------------------------------------------- lifecycle
    def start(self) -> None:
        self._thread = threading.Thread(target=self._main, name="sdze-dispatcher", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop dispatching; running jobs stop at their next step and are re-queued for the next start."""
        self._stopping.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout)
        deadline = time.monotonic() + timeout
        for t in list(self._running.values()):
            t.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            left = list(self._running)
        for job_id in left:
            # Still winding down after the grace period: re-queue now (the next start resumes it from its
            # checkpoint) rather than leave it for the next start's reconcile to find.
            self.store.requeue(job_id, "server stopped; resumes from its last checkpoint")
        if self._started_ray:
            self._local_ray.shutdown()

    def wake(self) -> None:
        self._wake.set()

    def cancel(self, job_id: str) -> None:
        with self._lock:
            self._cancel.add(job_id)

    @property
    def running_count(self) -> int:
        with self._lock:
            return len(self._running)

    def _connect_ray(self) -> None:
        import ray

        from worker.cluster import connect

        s = self.settings
        if ray.is_initialized():
            return
        if s.ray_address or s.ray_num_cpus is None:
            # The worker's connect: attaches to ray_address/RAY_ADDRESS (failing fast on token-auth problems),
            # else starts a local Ray in this process (no dashboard, a small object store).
            self._started_ray = connect(s.ray_address, min_cpus=1)
        else:
            ray.init(
                num_cpus=s.ray_num_cpus, include_dashboard=False, log_to_driver=False, object_store_memory=256 << 20
            )
            self._started_ray = True

    def _main(self) -> None:
        try:
            requeued = self.store.reconcile(self.settings.max_attempts)
            if requeued:
                log.info("re-queued %d interrupted job(s): %s", len(requeued), ", ".join(requeued))
            self._connect_ray()
            if self.after_connect:
                self.after_connect()
        except Exception as e:  # reported by /readyz; the API still serves stored jobs
            self.error = f"{type(e).__name__}: {e}"
            log.exception("dispatcher failed to start")
            return
        self._refresh_capacity(force=True)
        self.ready = True
        while not self._stopping.is_set():
            self._refresh_capacity()
            self._fill()
            self._wake.wait(1.0)
            self._wake.clear()

    def _refresh_capacity(self, force: bool = False) -> None:
        """Re-read the cluster every ``CAPACITY_EVERY_S`` (a cheap GCS query); a failure keeps the last view."""
        now = time.monotonic()
        if not force and now - self._capacity_t < CAPACITY_EVERY_S:
            return
        self._capacity_t = now
        if self._started_ray:
            self._local_ray.watch()  # Ray starts workers on demand: keep the record of its processes current
        try:
            self.capacity = capacity_from_ray()
        except Exception as e:  # Ray briefly unreachable: keep dispatching on the last view
            log.warning("reading the Ray cluster's resources failed: %s", e)

    def fresh_capacity(self) -> Capacity | None:
        """The cluster read now (before refusing a job: a node may have joined since the last periodic read)."""
        if self.ready:
            self._refresh_capacity(force=True)
        return self.capacity

    def _fill(self) -> None:
        """Start queued jobs, oldest first, while run slots are free and their workers fit in what Ray has free.

        A job that does not fit stays queued with the reason (it can be cancelled at once) and a smaller job
        behind it may start first."""
        if self._stopping.is_set() or self.running_count >= self.settings.max_concurrent_jobs:
            return
        queued = self.store.queued(limit=100)
        ids = {j.id for j in queued}
        self._waiting = {k: v for k, v in self._waiting.items() if k in ids}  # forget cancelled ones
        for job in queued:
            if self._stopping.is_set() or self.running_count >= self.settings.max_concurrent_jobs:
                return
            try:
                spec = JobSpec.model_validate(job.spec)
            except Exception:  # stored by an older version: let _run fail it with the reason
                spec = None
            if spec is not None:
                with self._lock:
                    held = (sum(c for c, _ in self._needs.values()), sum(g for _, g in self._needs.values()))
                why = waiting_reason(spec, self.capacity, *held)
                if why is not None:
                    if self._waiting.get(job.id) != why:
                        self.store.set_waiting(job.id, why)
                        self._waiting[job.id] = why
                    continue
            self._waiting.pop(job.id, None)
            claimed = self.store.claim(job.id)
            if claimed is None:  # cancelled meanwhile
                continue
            t = threading.Thread(target=self._run, args=(claimed,), name=f"job-{claimed.id}", daemon=True)
            with self._lock:
                self._running[claimed.id] = t
                if spec is not None:
                    w = spec.resources.workers
                    self._needs[claimed.id] = (float(w), w * spec.resources.gpus_per_worker)
            t.start()

    # ------------------------------------------------------------------------------------ one job
    def job_dir(self, job_id: str) -> Path:
        return self.settings.artifacts_root / job_id

    def _run(self, job: Job) -> None:
        out_dir = self.job_dir(job.id)
        ckpt = out_dir / "checkpoint"
        out_dir.mkdir(parents=True, exist_ok=True)
        interval = self.settings.progress_interval_s
        last = {"t": 0.0, "db_t": 0.0, "stop": False}

        def progress(p: Any) -> None:
            d = asdict(p) if hasattr(p, "__dataclass_fields__") else dict(p)
            steps = d.get("steps")
            d["fraction"] = min(1.0, d["step"] / steps) if steps else None
            now = time.monotonic()
            if d.get("event") == "step" and now - last["t"] < interval:
                return
            last["t"] = now
            self.store.set_progress(job.id, d)

        def should_stop() -> bool:
            if self._stopping.is_set():
                return True
            with self._lock:
                if job.id in self._cancel:
                    return True
            # The store is the source of truth for cancel requests; polled sparingly.
            now = time.monotonic()
            if now - last["db_t"] > 1.0:
                last["db_t"] = now
                last["stop"] = self.store.cancel_requested(job.id)
            return last["stop"]

        from worker.executor import WorkerGroupError
        from worker.runner import solve_on_ray

        state, reason, metrics, detail = "failed", None, None, None
        try:
            spec = JobSpec.model_validate(job.spec)
            metrics = solve_on_ray(spec, out_dir, progress=progress, should_stop=should_stop, checkpoint_dir=ckpt)
            state = metrics.get("status", "failed")
            reason = metrics.get("reason")
            if state not in ("succeeded", "failed", "cancelled"):
                state, reason = "failed", f"internal: unknown status {state!r}"
        except WorkerGroupError as e:
            log.warning("job %s: %s", job.id, e)
            kind = {"ResourcesUnavailable": "resources-unavailable", "UnsupportedMethod": "invalid-spec"}
            state, reason = "failed", f"{kind.get(type(e).__name__, 'worker-lost')}: {e}"
            detail = "".join(traceback.format_exception(e))
        except Exception as e:
            log.exception("job %s crashed", job.id)
            state, reason = "failed", f"internal: {type(e).__name__}: {e}"
            detail = "".join(traceback.format_exception(e))
        try:
            cancelled_by_user = self.store.cancel_requested(job.id) or job.id in self._cancel
            if state != "succeeded" and self._stopping.is_set() and not cancelled_by_user:
                # Stopped (or broken, Ray going down) by a server shutdown, not by its owner: run it again from
                # its checkpoint at the next start; a no-op when stop() re-queued it already.
                self.store.requeue(job.id, "server stopped; resumes from its last checkpoint")
                return
            if state == "failed" and metrics is None and cancelled_by_user:
                state = "cancelled"  # cancelled while Ray was still reserving its workers: not a failure
            if state == "cancelled":
                reason = "cancelled by request"
            if state == "failed":  # the full text (Ray's colours, tracebacks) goes to error.log; one line stays
                write_error_log(out_dir / "error.log", reason, detail)
                reason = one_line(reason)
            self.store.record_artifacts(job.id, scan_artifacts(out_dir))
            self.store.finish(job.id, state, reason, metrics)
            if state == "succeeded":
                shutil.rmtree(ckpt, ignore_errors=True)  # only an interrupted run needs it
        except Exception as e:
            # The job must not stay "running" with nobody running it: fail it, saying why.
            log.exception("recording the outcome of job %s failed", job.id)
            why = (str(e).splitlines() or [""])[0][:200]
            try:
                self.store.finish(job.id, "failed", f"internal: recording the result failed: {type(e).__name__}: {why}")
            except Exception:  # the store itself is down: the next start's reconcile re-queues the job
                log.exception("failing job %s failed too", job.id)
        finally:
            with self._lock:
                self._running.pop(job.id, None)
                self._needs.pop(job.id, None)
                self._cancel.discard(job.id)
            self._wake.set()
