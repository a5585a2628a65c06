"""One SDZE replica as a Ray actor: a ``Solver`` plus the calls the driver makes on it each step.

The class is plain Python (``ReplicaWorker``); ``worker.executor`` wraps it with ``ray.remote`` and the
resources of the job. Every replica holds the full model; parameters never leave the actor except through
the checkpoint/export files the leader writes itself.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from sdze_core.config import RunConfig
from sdze_core.engine import WorkerReport
from sdze_core.solver import Solver


def state_digest(solver: Solver) -> str:
    """BLAKE2b of every state tensor's bytes (model, subspace bases, C, momentum, GN state) + the schedule.

    Equal digests prove bit-identical replicas; the driver compares them across actors every few steps."""
    h = hashlib.blake2b(digest_size=16)
    for name, tensor in sorted(solver.state_tensors().items()):
        h.update(name.encode())
        h.update(tensor.numpy().tobytes())
    h.update(json.dumps(solver.schedule.state_dict(), sort_keys=True).encode())
    return h.hexdigest()


@dataclass(frozen=True)
class Applied:
    """What a replica returns after applying a step: the mean CRN loss, a fingerprint of the state it just
    updated (``Solver.fingerprint``: the driver compares them every step), the engine's counters, and, when
    asked, its report for the next step."""

    loss: float
    fingerprint: str
    counters: dict[str, int]
    next_report: WorkerReport | None = None


def pick_device(gpu_ids: list) -> str:
    """CUDA only when Ray granted this actor a GPU *and* torch can use it (fake GPUs fall back to CPU)."""
    return "cuda" if gpu_ids and torch.cuda.is_available() else "cpu"


class ReplicaWorker:
    """Replica ``rank`` of ``world``. Methods are the per-step RPCs; all are deterministic in their inputs."""

    def __init__(self, cfg: RunConfig, rank: int, world: int, threads: int = 1):
        # One intra-op thread per worker: the worker owns one CPU bundle, and the scaling benchmark
        # compares 1 vs N workers at one thread each. Also keeps float reductions in a fixed order.
        torch.set_num_threads(threads)
        import ray

        self.rank, self.world = rank, world
        self.gpu_ids = [str(g) for g in ray.get_gpu_ids()]
        self.device = pick_device(self.gpu_ids)
        if self.device == "cuda":
            # Bitwise-identical replicas need deterministic kernels (CUBLAS_WORKSPACE_CONFIG set by the executor).
            torch.use_deterministic_algorithms(True, warn_only=True)
        self.node_id = ray.get_runtime_context().get_node_id()
        self.solver = Solver(cfg, self.device)

    # -- identity -----------------------------------------------------------------------------------------
    def info(self) -> dict:
        return {
            "rank": self.rank,
            "pid": os.getpid(),
            "node_id": self.node_id,
            "host": socket.gethostname(),
            "device": self.device,
            "gpu_ids": self.gpu_ids,
            "params": self.solver.model.num_params(),
            "zeroth_order": self.solver.zeroth_order,
        }

    # -- the step -------------------------------------------------------------------------------------------
    def probe(self, t: int) -> WorkerReport:
        """This worker's q probes of step t on its own CRN batch (seeds from (job_seed, t, rank, k))."""
        return self.solver.probe(t, self.rank)

    def apply(self, t: int, reports: list[WorkerReport], next_t: int | None = None) -> Applied:
        """Apply the gathered reports of step t; optionally probe step ``next_t`` in the same round trip
        (the probes only read the parameters just updated, so fusing saves one RPC per step)."""
        loss = self.solver.apply_probes(t, reports)
        fp, counters = self.solver.fingerprint(), self.solver.counters()
        nxt = self.solver.probe(next_t, self.rank) if next_t is not None else None
        return Applied(loss, fp, counters, nxt)

    def local_step(self, t: int) -> Applied:
        """A whole step on this replica alone (one worker, or a first-order method)."""
        loss = self.solver.local_step(t)
        return Applied(loss, "", self.solver.counters())

    # -- replica consistency ------------------------------------------------------------------------------
    def digest(self) -> tuple[str, float]:
        """(``state_digest``, the model's float checksum — reported only to make a mismatch readable)."""
        return state_digest(self.solver), self.solver.checksum()

    # -- everything else the trainer needs ----------------------------------------------------------------
    def set_horizon(self, horizon: int) -> None:
        self.solver.schedule.horizon = int(horizon)

    def evaluate_test(self) -> dict[str, float]:
        return self.solver.evaluate_test()

    def save_checkpoint(self, path: str) -> None:
        self.solver.save_checkpoint(Path(path))

    def start(self) -> dict:
        return self.solver.start()

    def refit(self) -> dict:
        return self.solver.refit()

    def load_checkpoint(self, path: str) -> None:
        self.solver.load_checkpoint(Path(path))

    def export(self, out_dir: str) -> dict:
        info = self.solver.export(Path(out_dir))
        return {**info, "peak_rss_bytes": self.peak_rss_bytes()}

    def cpu_seconds(self) -> float:
        """CPU time this worker process has used (benchmarks: tells contention from protocol overhead)."""
        return time.process_time()

    def peak_rss_bytes(self) -> int:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    def corrupt(self, delta: float = 1e-3) -> None:
        """Add ``delta`` to this replica's output bias (fault injection: tests of the per-step replica check)."""
        with torch.no_grad():
            self.solver.model.b[-1].add_(delta)

    def crash(self, code: int = 1) -> None:
        """Kill this worker process abruptly (fault-injection for tests and drills; no cleanup runs)."""
        os._exit(code)
