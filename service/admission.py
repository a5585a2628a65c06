"""Admission: refuse at submit what cannot run here, and tell a queued job what it waits for.

At submit (``check``), a job is refused (422 ``not-admitted``, naming the fields, the estimate and the limit):
- when its workers cannot be placed: each worker is a Ray bundle {CPU: 1, GPU: gpus_per_worker} that also needs
  its estimated memory on one node, and the cluster's nodes hold fewer such bundles than ``resources.workers``
  (checked when the cluster is known: the dispatcher is connected and ``autoscaling`` is off);
- when one worker's estimated peak memory (``sdze_core.memory.estimate``) is over the limit: the
  ``max_job_memory_bytes`` setting, else the largest node's memory as Ray reports it, else this machine's
  (with ``autoscaling`` only the setting: the nodes that will run the job may not exist yet);
- when one pass over its test set exceeds ``max_test_coordinates`` (test_points × dim), work that cannot finish.

Before starting a queued job (``waiting_reason``), the dispatcher checks that its bundles fit in what is free
now; otherwise the job stays ``queued`` with the reason (cancellable at once) instead of holding a run slot
while Ray waits for resources.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sdze_core.config import RunConfig
from sdze_core.memory import MemoryEstimate, estimate, gib, machine_memory_bytes, work
from sdze_core.spec import JobSpec

from .problems import Problem
from .settings import Settings

_EPS = 1e-9  # Ray reports fractional resources as floats


@dataclass(frozen=True)
class Node:
    cpus: float
    gpus: float
    memory: float  # bytes Ray may schedule on the node (its "memory" resource)


@dataclass(frozen=True)
class Capacity:
    """The Ray cluster as the dispatcher last saw it: alive nodes' totals and what is free cluster-wide."""

    nodes: tuple[Node, ...]
    free_cpus: float
    free_gpus: float

    @property
    def cpus(self) -> float:
        return sum(n.cpus for n in self.nodes)

    @property
    def gpus(self) -> float:
        return sum(n.gpus for n in self.nodes)


def capacity_from_ray() -> Capacity:
    """Read the connected cluster (the caller holds the Ray connection)."""
    import ray

    nodes = tuple(
        Node(float(r.get("CPU", 0)), float(r.get("GPU", 0)), float(r.get("memory", 0)))
        for r in (n.get("Resources", {}) for n in ray.nodes() if n.get("Alive"))
    )
    free = ray.available_resources()
    return Capacity(nodes, float(free.get("CPU", 0)), float(free.get("GPU", 0)))


def bundles_that_fit(nodes: tuple[Node, ...], gpus: float, memory: float) -> int:
    """How many {CPU: 1, GPU: gpus, memory} bundles the nodes hold (identical bundles: per node, then summed)."""
    total = 0
    for n in nodes:
        k = int(n.cpus + _EPS)
        if gpus > 0:
            k = min(k, int(n.gpus / gpus + _EPS))
        if memory > 0 and n.memory > 0:
            k = min(k, int(n.memory / memory + _EPS))
        total += k
    return total


def memory_limit(settings: Settings, capacity: Capacity | None) -> tuple[int, str]:
    """(bytes one worker may use, where that figure comes from)."""
    if settings.max_job_memory_bytes is not None:
        return settings.max_job_memory_bytes, "the max_job_memory_bytes setting"
    if settings.autoscaling:  # the nodes that will run it may not exist yet: only a configured limit applies
        return 0, "none (autoscaling cluster; set max_job_memory_bytes)"
    if capacity is not None and any(n.memory for n in capacity.nodes):
        return int(max(n.memory for n in capacity.nodes)), "the largest Ray node's memory"
    return machine_memory_bytes(), "this machine's memory"


def _refuse(detail: str, fields: list[tuple[str, str]], **ext: object) -> Problem:
    errors = [{"field": f, "in": "body", "pointer": "/" + f.replace(".", "/"), "msg": m} for f, m in fields]
    return Problem(422, detail, "not-admitted", errors=errors, **ext)


def _memory_fields(est: MemoryEstimate) -> list[str]:
    phase = est.peak_phase
    if est.resident["weights"] + est.resident["optimizer"] >= est.phases[phase]:
        return ["model.width", "problem.dim"]
    return {"step": ["solver.batch_size", "problem.dim"], "evaluation": ["eval.test_points", "problem.dim"]}.get(
        phase, ["model.width", "problem.dim"]
    )


def check(
    spec: JobSpec,
    cfg: RunConfig,
    settings: Settings,
    capacity: Capacity | None,
    fresh: Callable[[], Capacity | None] | None = None,
) -> MemoryEstimate:
    """Raise a 422 ``Problem`` when the job cannot run here (see the module docstring); returns the estimate.

    ``capacity`` is the cluster as last read; before refusing placement, ``fresh()`` (if given) reads it again,
    so a node that joined a moment ago counts."""
    coords = work(cfg)
    if coords > settings.max_test_coordinates:
        msg = (
            f"one pass over the test set is {coords:.3g} coordinates (test_points × dim); "
            f"at most {settings.max_test_coordinates:.3g} on this server"
        )
        raise _refuse(
            msg, [("eval.test_points", msg)], admission={"work": coords, "limit": settings.max_test_coordinates}
        )
    est = estimate(cfg)
    limit, source = memory_limit(settings, capacity)
    info = {"estimate_bytes": est.total, "limit_bytes": limit, "limit_source": source, "parts": est.parts}
    if limit and est.total > limit:
        msg = f"one worker needs about {est.describe()}; the limit is {gib(limit)} ({source})"
        raise _refuse(msg, [(f, msg) for f in _memory_fields(est)], admission=info)
    if capacity is None or settings.autoscaling:
        return est
    g = spec.resources.gpus_per_worker
    per_node_memory = est.total if settings.max_job_memory_bytes is None else 0  # a configured limit overrides
    fit = bundles_that_fit(capacity.nodes, g, per_node_memory)
    if fit < spec.resources.workers and fresh is not None and (now := fresh()) is not None:
        capacity = now
        fit = bundles_that_fit(capacity.nodes, g, per_node_memory)
    if fit < spec.resources.workers:
        bundle = f"{{CPU: 1{f', GPU: {g:g}' if g else ''}, memory: {gib(est.total)}}}"
        msg = (
            f"the cluster can place {fit} worker(s) of {bundle}: {capacity.cpus:g} CPUs, {capacity.gpus:g} GPUs "
            f"on {len(capacity.nodes)} node(s); asked for {spec.resources.workers}"
        )
        fields = [("resources.workers", msg)]
        if g and fit == 0:
            fields.append(("resources.gpus_per_worker", msg))
        raise _refuse(msg, fields, admission=info)
    return est


def waiting_reason(spec: JobSpec, capacity: Capacity | None, cpus_held: float, gpus_held: float) -> str | None:
    """Why a queued job cannot start now (None: it can).

    ``*_held``: what this server's running jobs hold. Ray's free figures miss a job whose workers are still
    being placed, so free is taken as min(Ray's free, total − held): exact on a cluster this server has to
    itself, and still counting other users' work on a shared one."""
    if capacity is None:
        return "waiting for the Ray cluster"
    w, g = spec.resources.workers, spec.resources.gpus_per_worker
    if bundles_that_fit(capacity.nodes, g, 0) < w:
        return f"waiting for resources: needs {w} worker(s); the cluster has room for fewer now (autoscaling)"
    free_cpus = min(capacity.free_cpus, capacity.cpus - cpus_held)
    free_gpus = min(capacity.free_gpus, capacity.gpus - gpus_held)
    if free_cpus + _EPS < w or (g and free_gpus + _EPS < w * g):
        gpus = f" and {w * g:g} GPUs ({max(free_gpus, 0):g} free)" if g else ""
        return f"waiting for resources: needs {w} CPUs ({max(free_cpus, 0):g} free){gpus}"
    return None
