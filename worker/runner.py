"""``solve_on_ray``: run one job on a Ray worker group, restarting it from checkpoints when a worker dies.

Used by ``sdze solve --workers N`` and by the job service. The loop itself is ``sdze_core.trainer.Trainer``
(budget, evaluation, checkpoints, progress, cancellation, artifacts); this module supplies the ``RayExecutor``
and the fault handling around it: on a lost worker (``RayActorError``, node death) the whole group is torn down,
a fresh group is started, and the trainer resumes from the last checkpoint. Every step is a deterministic
function of (job_seed, step, worker, k) and the checkpointed state, so the final parameters equal those of an
uninterrupted run, bit for bit.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from sdze_core.artifacts import write_json
from sdze_core.spec import JobSpec
from sdze_core.trainer import Progress, Trainer

from .cluster import connect
from .executor import WORKER_LOST, RayExecutor, WorkersLost, check_method

log = logging.getLogger(__name__)

MAX_RESTARTS = int(os.environ.get("SDZE_MAX_RESTARTS", "3"))
PLACEMENT_STRATEGY = os.environ.get("SDZE_PLACEMENT_STRATEGY", "PACK")


def solve_on_ray(
    spec: JobSpec,
    out_dir: Path,
    *,
    ray_address: str | None = None,
    progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    checkpoint_dir: Path | None = None,
) -> dict:
    """Solve ``spec`` on ``spec.resources.workers`` Ray workers; blocks; returns the metrics of metrics.json.

    Connects to Ray if needed (existing connection, ``ray_address``, ``RAY_ADDRESS``, else a local Ray started
    in-process). Resumes from ``checkpoint_dir`` (default ``out_dir/checkpoint``) when it holds a checkpoint.
    ``out_dir`` and ``checkpoint_dir`` must be reachable by the workers (shared storage on a multi-node cluster).
    ``progress`` gets every step; ``should_stop`` is polled every step (cancel at the next step boundary).
    Raises ``WorkerGroupError`` subclasses: ``ResourcesUnavailable`` (bundles not reserved in time),
    ``WorkersLost`` (workers kept dying: more than ``SDZE_MAX_RESTARTS`` restarts, default 3), ``UnsupportedMethod``
    (a first-order method with workers > 1); and ``ReplicaMismatch`` if replicas ever differ.
    """
    cfg = spec.to_config()
    check_method(cfg)
    out_dir = Path(out_dir).resolve()
    ckpt = Path(checkpoint_dir).resolve() if checkpoint_dir else out_dir / "checkpoint"
    connect(ray_address, min_cpus=cfg.workers)
    restarts, lost = 0, []
    while True:
        ex = None
        try:
            ex = RayExecutor(cfg, gpus_per_worker=spec.resources.gpus_per_worker, strategy=PLACEMENT_STRATEGY)
            metrics = Trainer(
                cfg, out_dir, executor=ex, progress=progress, should_stop=should_stop, checkpoint_dir=ckpt
            ).run()
            break
        except WORKER_LOST as e:
            lost.append(f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
            if restarts >= MAX_RESTARTS:
                raise WorkersLost(f"workers lost {restarts + 1} times; giving up. Last: {lost[-1]}") from e
            # A cancel that arrives now is honoured by the fresh trainer at once (status "cancelled", artifacts
            # from the last checkpoint), like any other cancel.
            restarts += 1
            log.warning("worker lost (%s); restart %d/%d from %s", lost[-1], restarts, MAX_RESTARTS, ckpt)
            time.sleep(0.2)  # let Ray release the dead group's resources before reserving new ones
        finally:
            if ex is not None:
                ex.close()
    metrics.update(
        executor="ray_actors",
        worker_restarts=restarts,
        workers_lost=lost,
        ray_nodes=ex.describe()["nodes"],
        devices=sorted({i["device"] for i in ex.info}),
        replica_checks=ex.checks,
    )
    if ex.exchange_log:
        last = ex.exchange_log[-1]
        metrics["exchange"] = {
            "accounting": "comm_bytes_per_step = workers × Σ_w payload_bytes(report_w): 4-byte worker id, 8-byte "
            "loss, 4-byte k and 8-byte δ per probe; update gn adds a 4-byte count and its h+1 output-layer and "
            "p × m' W1 coefficients (m' <= batch + directions) at the run's element size; independent of d and P",
            "payload_bytes_per_worker": list(last.payload_bytes),
            "probes_per_step": last.probes,
            "pickled_bytes_per_step": last.pickled_bytes,
        }
    write_json(out_dir / "metrics.json", metrics)
    return metrics
