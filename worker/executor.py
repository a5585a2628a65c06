"""``RayExecutor``: the core ``Executor`` protocol on a group of Ray actors (one replica each).

Step t with N workers (SPEC §2.5), driven by ``sdze_core.trainer.Trainer``:

1. every actor w measures its q probes on its own CRN batch → a ``WorkerReport`` (``sdze_core/engine/report.py``:
   the (k, δ_k) pairs and the loss; for the default method also the h+1 output-layer and p × m' W₁ coefficients);
2. the driver gathers the N reports (seeds are implicit in (job_seed, t, w, k)) and puts the list in the object
   store once;
3. every actor applies the identical list, regenerating each perturbation from its seed, returns the loss, a
   fingerprint of the state it just updated and the engine's counters, and (fused into the same RPC) already
   probes step t+1. Parameters are never sent.

Byte accounting (``StepResult.comm_bytes``): the all-gather delivers the N reports to each of the N workers,
so ``comm_bytes = N · Σ_w report_w.payload_bytes()`` (0 with one worker); ``payload_bytes`` documents the exact
field sizes. Ray's own framing (pickle headers, RPC envelopes: a few hundred bytes per message, also independent
of P) is measured separately in ``exchange_log[i].pickled_bytes``.

Replica consistency: the fingerprints are compared after every step (``check_fingerprints``); every
``check_every`` steps, before each checkpoint and before export, every actor also hashes its full state. Any
difference raises ``ReplicaMismatch`` and fails the job.
"""

from __future__ import annotations

import logging
import os
import pickle
import uuid
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import ray
from ray.util.placement_group import placement_group, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from sdze_core.config import FIRST_ORDER_METHODS, RunConfig
from sdze_core.engine import WorkerReport
from sdze_core.solver import StepResult

from .actor import ReplicaWorker

log = logging.getLogger(__name__)

# Errors that mean "a worker process (or its node) is gone": the runner restarts the group from a checkpoint.
WORKER_LOST = (
    ray.exceptions.RayActorError,  # includes ActorDiedError / ActorUnavailableError
    ray.exceptions.NodeDiedError,
    ray.exceptions.ObjectLostError,
    ray.exceptions.LocalRayletDiedError,
)


class WorkerGroupError(RuntimeError):
    """The worker group could not be started or used (resources, method, restarts exhausted)."""


class ResourcesUnavailable(WorkerGroupError):
    """The cluster could not reserve the job's N bundles in time."""


class WorkersLost(WorkerGroupError):
    """Workers kept dying: the restart budget is spent."""


class UnsupportedMethod(WorkerGroupError, ValueError):
    """The method cannot run on several workers (first-order baselines)."""


class ReplicaMismatch(RuntimeError):
    """Replicas that must be bit-identical are not: the job must fail, never train on."""


@dataclass(frozen=True)
class Exchange:
    """What crossed between workers in one step (kept for the last few steps, for tests and debugging)."""

    step: int
    payload_bytes: tuple[int, ...]  # per worker report
    comm_bytes: int  # N · Σ payload (each of N workers receives all N reports)
    pickled_bytes: int  # serialized size of the gathered list (what the object store holds once)
    probes: int  # (k, δ) pairs in the gathered list


def check_method(cfg: RunConfig) -> None:
    """First-order baselines run on one worker only (their update needs the full gradient, not seeds)."""
    if cfg.solver.method in FIRST_ORDER_METHODS and cfg.workers > 1:
        raise UnsupportedMethod(
            f"method {cfg.solver.method!r} is a first-order (autograd + Adam) baseline and runs on one worker; "
            f"set resources.workers=1. Multi-worker runs exchange only seeds and scalars and are for the "
            f"zeroth-order methods (sdze, sdze_published, sdze_no_crns, zo_full)."
        )


class RayExecutor:
    """N replicas as Ray actors in one placement group (all N bundles reserved at once, or none).

    Reserving waits up to ``ready_timeout_s`` (default ``SDZE_RESERVE_TIMEOUT_S`` or 120 s).
    ``gpus_per_worker`` > 0 asks Ray for that many GPUs per actor (cuda is used when torch sees one);
    otherwise each actor takes one CPU. ``strategy`` is the placement-group strategy (PACK by default: fill a
    node first, spill over; SPREAD to put one worker per node). Actors are named ``{name}-w{rank}`` so that
    operators (and tests) can find them.
    """

    def __init__(
        self,
        cfg: RunConfig,
        *,
        gpus_per_worker: float = 0.0,
        strategy: str = "PACK",
        check_every: int | None = None,
        prefetch: bool = True,
        ready_timeout_s: float | None = None,
        name: str | None = None,
    ):
        check_method(cfg)
        self.cfg = cfg
        self.n = cfg.workers
        self.name = name or f"sdze-{uuid.uuid4().hex[:8]}"
        self.check_every = check_every or cfg.checkpoint_every or cfg.eval.every
        self.prefetch = prefetch
        self.exchange_log: deque[Exchange] = deque(maxlen=64)
        self.checks = 0
        self._pending: tuple[int, list[WorkerReport]] | None = None  # step t's reports, evaluated ahead
        self._step = 0  # steps applied so far (as the trainer counts them)
        self._checked_at = -1  # step of the last replica check
        self._closed = False
        self._counters: dict[str, int] = {}
        self.actors: list = []
        if ready_timeout_s is None:
            ready_timeout_s = float(os.environ.get("SDZE_RESERVE_TIMEOUT_S", "120"))
        bundle = {"CPU": 1.0, **({"GPU": float(gpus_per_worker)} if gpus_per_worker > 0 else {})}
        self.pg = placement_group([dict(bundle) for _ in range(self.n)], strategy=strategy, name=self.name)
        try:
            ready, _ = ray.wait([self.pg.ready()], timeout=ready_timeout_s)
            if not ready:
                raise ResourcesUnavailable(
                    f"could not reserve {self.n} worker(s) × {bundle} ({strategy}) within {ready_timeout_s:.0f} s; "
                    f"cluster has {ray.cluster_resources()}, free {ray.available_resources()}"
                )
            env = {"CUBLAS_WORKSPACE_CONFIG": ":4096:8"} if gpus_per_worker > 0 else {}
            remote = ray.remote(ReplicaWorker)
            for rank in range(self.n):
                opts = dict(
                    num_cpus=1,
                    num_gpus=float(gpus_per_worker),
                    max_concurrency=2,  # a second slot keeps info/digest/crash callable during a long step
                    max_restarts=0,  # restarts are the runner's: a fresh group resumed from a checkpoint
                    name=f"{self.name}-w{rank}",
                    scheduling_strategy=PlacementGroupSchedulingStrategy(self.pg, placement_group_bundle_index=rank),
                )
                if env:
                    opts["runtime_env"] = {"env_vars": env}
                self.actors.append(remote.options(**opts).remote(cfg, rank, self.n))
            self.info = ray.get([a.info.remote() for a in self.actors])
        except BaseException:
            self.close()
            raise
        driver_node = ray.get_runtime_context().get_node_id()
        # Any replica can write files (they are identical); prefer one on the driver's node, so that a local
        # out_dir works even on a cluster (other nodes need shared storage for checkpoints anyway).
        self.leader = next((i for i, inf in enumerate(self.info) if inf["node_id"] == driver_node), 0)

    # -------------------------------------------------------------------------------------------- the step
    def step(self, t: int) -> StepResult:
        if self.n == 1:  # nothing to exchange: the whole step runs inside the one actor
            out = ray.get(self.actors[0].local_step.remote(t))
            self._counters = out.counters
            return StepResult(out.loss, 0)
        if self._pending is not None and self._pending[0] == t:
            reports = self._pending[1]
        else:
            reports = ray.get([a.probe.remote(t) for a in self.actors])
        self._pending = None
        shared = ray.put(reports)  # one copy in the object store, read by all N actors
        nxt = t + 1 if self.prefetch else None
        outs = ray.get([a.apply.remote(t, shared, nxt) for a in self.actors])
        self.check_fingerprints(t, [o.fingerprint for o in outs])
        self._counters = outs[0].counters
        if nxt is not None:
            self._pending = (nxt, [o.next_report for o in outs])
        self._step = t + 1
        payload = tuple(r.payload_bytes() for r in reports)
        probes = sum(len(r.probes) for r in reports)
        ex = Exchange(t, payload, self.n * sum(payload), len(pickle.dumps(reports)), probes)
        self.exchange_log.append(ex)
        if self._step % self.check_every == 0:
            self.check_replicas()
        return StepResult(outs[0].loss, ex.comm_bytes)

    def check_fingerprints(self, t: int, fingerprints: list[str]) -> None:
        """Every step: each replica's fingerprint of the state it just updated must agree; name the odd ones."""
        if len(set(fingerprints)) == 1:
            return
        # the most common fingerprint is the reference; on a tie (two workers) the lowest rank's wins, so the
        # named worker does not depend on set order (string hashes are salted per process)
        majority = max(fingerprints, key=fingerprints.count)
        odd = [w for w, f in enumerate(fingerprints) if f != majority]
        detail = ", ".join(f"w{w}: {f[:12]}…" for w, f in enumerate(fingerprints))
        raise ReplicaMismatch(
            f"replicas diverged at step {t}: worker(s) {', '.join(map(str, odd))} hold a different state "
            f"after applying the same reports (state fingerprints {detail})"
        )

    def counters(self) -> dict[str, int]:
        """The engine's counters after the last step (``SDZEEngine.COUNTERS``), identical on every replica."""
        return dict(self._counters)

    def check_replicas(self, force: bool = False) -> None:
        """Compare every replica's state hash; raise ``ReplicaMismatch`` on any difference."""
        if self.n == 1 or (self._checked_at == self._step and not force):
            return
        digests = ray.get([a.digest.remote() for a in self.actors])
        self.checks += 1
        self._checked_at = self._step
        if len({d[0] for d in digests}) != 1:
            detail = ", ".join(f"w{i}: {h[:12]}… (checksum {c!r})" for i, (h, c) in enumerate(digests))
            raise ReplicaMismatch(f"replicas diverged (detected after step {self._step}): {detail}")

    # ------------------------------------------------------------------------------- the rest of Executor
    def evaluate(self) -> dict[str, float]:
        return ray.get(self.actors[self.leader].evaluate_test.remote())

    def set_horizon(self, horizon: int) -> None:
        ray.get([a.set_horizon.remote(int(horizon)) for a in self.actors])

    def save_checkpoint(self, path: Path) -> None:
        """Verified replicas, then the leader writes the state into the folder itself (the trainer swaps it in)."""
        self.check_replicas()
        ray.get(self.actors[self.leader].save_checkpoint.remote(str(Path(path).resolve())))

    def start(self) -> dict:
        """Every replica runs the fresh run's start (deterministic in the config, so the replicas stay identical:
        checked at once); the leader's record is returned."""
        return self._on_every_replica("start")

    def refit(self) -> dict:
        """Every replica runs the finished run's output refit (deterministic, like ``start``: checked at once);
        the leader's record is returned."""
        return self._on_every_replica("refit")

    def _on_every_replica(self, method: str) -> dict:
        out = ray.get([getattr(a, method).remote() for a in self.actors])
        self.check_replicas(force=True)
        return out[self.leader]

    def load_checkpoint(self, path: Path) -> None:
        """Every actor reads the checkpoint from the shared path (no weights through the driver)."""
        self._pending = None
        ray.get([a.load_checkpoint.remote(str(Path(path).resolve())) for a in self.actors])
        self._checked_at = -1

    def export(self, out_dir: Path) -> dict:
        self.check_replicas()
        info = ray.get(self.actors[self.leader].export.remote(str(Path(out_dir).resolve())))
        rss = ray.get([a.peak_rss_bytes.remote() for a in self.actors])
        info["peak_rss_bytes"] = max([info.get("peak_rss_bytes", 0), *rss])
        return info

    def describe(self) -> dict:
        return {
            "params": self.info[0]["params"],
            "device": self.info[0]["device"],
            "workers": self.n,
            "nodes": sorted({i["node_id"] for i in self.info}),
        }

    def close(self) -> None:
        """Kill the actors and release the placement group (idempotent; safe after a worker died)."""
        if self._closed:
            return
        self._closed = True
        self._pending = None
        for a in self.actors:
            try:
                ray.kill(a, no_restart=True)
            except Exception as e:  # already dead or never started: nothing to free
                log.debug("kill %s: %s", a, e)
        try:
            remove_placement_group(self.pg)
        except Exception as e:
            log.debug("remove placement group: %s", e)
