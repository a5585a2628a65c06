"""The Ray worker group on a real local Ray cluster (issue 4): exchange, replicas, faults, nodes, cancel."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from sdze_core.engine import WorkerReport
from sdze_core.solver import LocalExecutor, Solver, initial_horizon
from sdze_core.spec import JobSpec
from worker.actor import state_digest
from worker.executor import (
    RayExecutor,
    ReplicaMismatch,
    ResourcesUnavailable,
    UnsupportedMethod,
    WorkersLost,
    check_method,
)
from worker.runner import solve_on_ray

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.ray

ROOT = Path(__file__).resolve().parents[1]


def make_spec(
    workers: int = 2, method: str = "sdze", dim: int = 20, width: int = 16, steps: int = 12, **solver
) -> JobSpec:
    refit = {"output_refit_points": 16_384} if method == "sdze" else {}  # the replicas' refit is checked too
    return JobSpec.model_validate(
        {
            "problem": {"name": "sine_gordon_two_body", "dim": dim, "seed": 0},
            "model": {"width": width, "depth": 3},
            "solver": {"method": method, "steps": steps, "batch_size": 16, "samples": 4, **refit, **solver},
            "eval": {"test_points": 200, "every": 4, "sample_points": 50},
            "resources": {"workers": workers},
            "checkpoint_every": 4,
            "seed": 3,
        }
    )


@pytest.fixture(scope="module")
def ray_local():
    """One local Ray for the module (start/stop costs seconds); reuse a connection someone else opened."""
    before = os.environ.get("RAY_AUTH_MODE")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False, object_store_memory=100 * 2**20)
    yield
    if started:
        ray.shutdown()
    if before is None:  # leave the environment as other test modules expect it
        os.environ.pop("RAY_AUTH_MODE", None)


@pytest.fixture
def one_thread():
    """The actors run one torch thread; the in-process reference must reduce in the same order."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def reference_run(ray_local, tmp_path_factory) -> Path:
    """An uninterrupted 2-worker run of the default method; its artifacts are compared bitwise below."""
    out = tmp_path_factory.mktemp("ref")
    m = solve_on_ray(make_spec(), out)
    assert m["status"] == "succeeded" and m["steps_done"] == 12 and m["worker_restarts"] == 0
    assert m["replica_checks"] >= 3
    assert m["output_refit"]["points"] == 16_384  # every replica refits, checked equal right after (force)
    return out


def same_weights(a: Path, b: Path) -> bool:
    wa, wb = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def drive(ex, cfg, steps: int) -> None:
    """What the trainer does to an executor, minus evaluation and checkpoints."""
    ex.set_horizon(initial_horizon(cfg))
    for t in range(steps):
        ex.step(t)


def actor_digests(ex: RayExecutor) -> list[str]:
    return [d[0] for d in ray.get([a.digest.remote() for a in ex.actors])]


Q = 4


def run_group(method: str, dim: int = 20, width: int = 16, steps: int = 6) -> dict:
    """Drive a 2-worker RayExecutor for ``steps`` steps; return its replica digests and exchange log."""
    cfg = make_spec(method=method, dim=dim, width=width, q=Q).to_config()
    ex = RayExecutor(cfg)
    try:
        drive(ex, cfg, steps)
        return {
            "digests": actor_digests(ex),
            "log": list(ex.exchange_log),
            "params": ex.describe()["params"],
            "checks": ex.checks,
        }
    finally:
        ex.close()


@pytest.fixture(scope="module")
def small_groups(ray_local) -> dict:
    return {m: run_group(m) for m in ("sdze", "sdze_published")}


@pytest.mark.parametrize("method", ["sdze", "sdze_published"])
def test_two_workers_equal_single_process_with_both_probe_sets(small_groups, one_thread, method):
    """N=2 replicas end bit-identical, and equal one process that evaluates the same 2·q seeded probes."""
    cfg = make_spec(method=method, q=Q).to_config()
    digests = small_groups[method]["digests"]
    assert small_groups[method]["checks"] >= 1
    assert digests[0] == digests[1]
    replicas = [Solver(cfg, "cpu"), Solver(cfg, "cpu")]
    for t in range(6):
        reports = [replicas[w].probe(t, w) for w in range(2)]
        assert sum(len(r.probes) for r in reports) == 2 * Q
        for s in replicas:
            s.apply_probes(t, reports)
    ref = state_digest(replicas[0])
    assert ref == state_digest(replicas[1])
    assert digests[0] == ref  # bitwise: same seeds, same ops, same thread count → same bits


def test_exchange_is_seeds_and_scalars_only(small_groups):
    """Per step only (k, δ) pairs + loss cross (plus, for update='gn', h+1 output-layer scalars and the p × m'
    exact-W₁ coefficients, m' ≤ N+S), and the byte count does not change when the dimension (and so P) grows."""
    q = Q
    seen = {(m, 20, 16): (g["log"][-1], g["params"]) for m, g in small_groups.items()}
    assert [e.step for e in small_groups["sdze"]["log"]] == list(range(6))
    for method, dim, width in [("sdze_published", 80, 32), ("sdze", 80, 16)]:
        g = run_group(method, dim, width, steps=2)
        seen[(method, dim, width)] = (g["log"][-1], g["params"])
    small, large = seen[("sdze_published", 20, 16)], seen[("sdze_published", 80, 32)]
    per_worker = 12 * q + 12  # 4-byte k + 8-byte δ per probe; 4-byte worker id + 8-byte loss
    for ex_, _ in (small, large):
        assert ex_.payload_bytes == (per_worker, per_worker)
        assert ex_.comm_bytes == 2 * 2 * per_worker  # all-gather: 2 workers each receive both reports
        assert ex_.probes == 2 * q
    assert large[1] > 4 * small[1]  # P grew several-fold …
    # … the serialized exchange did not (pickle framing may differ by a few bytes: memo ids, tensor storage keys)
    assert abs(large[0].pickled_bytes - small[0].pickled_bytes) <= 16 and large[0].pickled_bytes < 512
    gn_small, gn_large = seen[("sdze", 20, 16)], seen[("sdze", 80, 16)]
    # + the 4-byte rejected-trial count, (h+1) float32 output-layer and p·m' = 2 × (16 points + 4 directions) W₁
    # coefficients: 60 + 4 + 68 + 160 = 292 bytes per worker at q = 4, h = 16, whatever d is
    gn_bytes = per_worker + 4 + 4 * 17 + 4 * 2 * 20
    assert gn_large[0].payload_bytes == (gn_bytes,) * 2
    # at d = 20 a batch's span can have rank < N+S; there (d < 5N) the held-out check also sends each worker's λ
    assert all(b <= gn_bytes + 8 for b in gn_small[0].payload_bytes)
    assert abs(gn_large[0].pickled_bytes - gn_small[0].pickled_bytes) <= 16
    assert gn_large[0].pickled_bytes < 4 * gn_large[1]


def test_worker_process_killed_mid_run_resumes_bitwise(ray_local, reference_run, tmp_path):
    """os._exit in worker 1 at step 6 → group rebuilt, resumed from the step-4 checkpoint, same final bits."""
    crashed = []

    def progress(p):
        if p.step == 6 and not crashed:
            names = [n for n in ray.util.list_named_actors() if n.startswith("sdze-") and n.endswith("-w1")]
            assert len(names) == 1
            ray.get_actor(names[0]).crash.remote()
            crashed.append(names[0])
            time.sleep(0.5)  # let the process die before the next step's RPC

    m = solve_on_ray(make_spec(), tmp_path, progress=progress)
    assert crashed and m["status"] == "succeeded" and m["steps_done"] == 12
    assert m["worker_restarts"] == 1 and "ActorDied" in m["workers_lost"][0]
    assert same_weights(tmp_path, reference_run)
    ref = json.loads((reference_run / "metrics.json").read_text())
    assert m["rel_l2"] == ref["rel_l2"] and m["final_loss"] == ref["final_loss"]
    assert not [n for n in ray.util.list_named_actors() if n.startswith("sdze-")]


def test_cancel_stops_within_a_few_steps_and_cleans_up(ray_local, tmp_path):
    seen = []

    def progress(p):
        seen.append(p.step)

    m = solve_on_ray(
        make_spec(steps=500), tmp_path, progress=progress, should_stop=lambda: bool(seen) and seen[-1] >= 3
    )
    assert m["status"] == "cancelled" and 3 <= m["steps_done"] <= 5
    assert not [n for n in ray.util.list_named_actors() if n.startswith("sdze-")]
    table = ray.util.placement_group_table()
    assert all(pg["state"] == "REMOVED" for pg in table.values())


def test_single_worker_and_first_order(ray_local, one_thread, tmp_path):
    """One ZO worker equals LocalExecutor bitwise; first-order baselines run on one actor, never on N."""
    for method in ("sdze", "sdgd_adam"):
        cfg = make_spec(workers=1, method=method, steps=3).to_config()
        ex, local = RayExecutor(cfg), LocalExecutor(cfg, "cpu")
        try:
            drive(ex, cfg, 3)
            drive(local, cfg, 3)
            assert actor_digests(ex) == [state_digest(local.solver)]
            assert ex.exchange_log.maxlen and not ex.exchange_log  # nothing exchanged with one worker
        finally:
            ex.close()
    with pytest.raises(ValueError, match="resources.workers"):  # refused at validation (sdze_core/build.py)
        make_spec(workers=2, method="hte_adam")
    cfg = dataclasses.replace(make_spec(workers=1, method="hte_adam").to_config(), workers=2)
    with pytest.raises(UnsupportedMethod, match="first-order"):  # and by the worker group, for configs built directly
        check_method(cfg)


def test_unreservable_group_fails_fast_and_releases(ray_local):
    """More workers than the cluster has CPUs: a clear error after the timeout, no placement group left."""
    with pytest.raises(ResourcesUnavailable, match="could not reserve 64 worker"):
        RayExecutor(make_spec(workers=64).to_config(), ready_timeout_s=1)
    assert all(pg["state"] == "REMOVED" for pg in ray.util.placement_group_table().values())


def test_restarts_are_bounded(ray_local, tmp_path, monkeypatch):
    """With no restart budget left, a lost worker fails the job with WorkersLost (and cleans up)."""
    import worker.runner

    monkeypatch.setattr(worker.runner, "MAX_RESTARTS", 0)

    def progress(p):
        if p.step == 2:
            names = [n for n in ray.util.list_named_actors() if n.startswith("sdze-") and n.endswith("-w0")]
            ray.kill(ray.get_actor(names[0]))

    with pytest.raises(WorkersLost, match="giving up"):
        solve_on_ray(make_spec(), tmp_path, progress=progress)
    assert not [n for n in ray.util.list_named_actors() if n.startswith("sdze-")]


TWO_NODES = r"""
import json, os, sys
from pathlib import Path
import ray
from ray.cluster_utils import Cluster
sys.path.insert(0, sys.argv[1])
from tests.test_worker_ray import make_spec
from worker.runner import solve_on_ray
cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "resources": {"node_a": 1}})
cluster.add_node(num_cpus=1, resources={"node_b": 1})
ray.init(address=cluster.address, log_to_driver=False)
cluster.wait_for_nodes()
try:
    m = solve_on_ray(make_spec(), Path(sys.argv[2]))
    print("RESULT" + json.dumps({"nodes": m["ray_nodes"], "status": m["status"], "cluster": len(ray.nodes())}))
finally:
    ray.shutdown()
    cluster.shutdown()
"""


def test_two_ray_nodes_match_single_node(reference_run, tmp_path):
    """Two Ray nodes (ray.cluster_utils.Cluster, in its own process), one worker on each; same result."""
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "SDZE_PLACEMENT_STRATEGY": "STRICT_SPREAD"}
    env.pop("RAY_ADDRESS", None)
    r = subprocess.run(
        [sys.executable, "-c", TWO_NODES, str(ROOT), str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        cwd=ROOT,
    )
    line = next((x for x in r.stdout.splitlines() if x.startswith("RESULT")), None)
    assert line, f"two-node run failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    res = json.loads(line[6:])
    assert res["status"] == "succeeded" and res["cluster"] == 2
    assert len(res["nodes"]) == 2  # STRICT_SPREAD: one worker per node
    assert same_weights(tmp_path, reference_run)


AUTH_HEAD = r"""
import sys
import ray
ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
print(ray.get_runtime_context().gcs_address, flush=True)
sys.stdin.read()
"""

AUTH_CLIENT = r"""
import sys, time
from worker.cluster import RayConnectError, connect
t = time.time()
try:
    connect(sys.argv[1])
    import ray
    print("CONNECTED", ray.cluster_resources()["CPU"], time.time() - t)
except RayConnectError as e:
    print("REFUSED", time.time() - t, e)
"""


def test_token_auth_cluster_connects_or_fails_fast(tmp_path):
    """A token-auth head (Ray 2.60 default): a token file connects without RAY_AUTH_MODE; a wrong token
    fails in seconds with a message naming what to set (Ray alone retries ~20 s, then a bare ConnectionError)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env["HOME"] = str(tmp_path)  # the head writes a fresh token to $HOME/.ray/auth_token
    head = subprocess.Popen(
        [sys.executable, "-c", AUTH_HEAD], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    try:
        address = head.stdout.readline().strip()
        token = tmp_path / ".ray" / "auth_token"
        assert address and token.is_file()
        client_env = {**env, "HOME": str(tmp_path / "client")}
        cases = {"good": {"RAY_AUTH_TOKEN_PATH": str(token)}, "bad": {"RAY_AUTH_TOKEN": "x" * 32}}
        out = {}
        for name, extra in cases.items():
            r = subprocess.run(
                [sys.executable, "-c", AUTH_CLIENT, address],
                env={**client_env, **extra},
                capture_output=True,
                text=True,
                timeout=120,
                cwd=ROOT,
            )
            out[name] = next((x for x in r.stdout.splitlines() if x.startswith(("CONNECTED", "REFUSED"))), r.stderr)
        assert out["good"].startswith("CONNECTED"), out["good"]
        assert out["bad"].startswith("REFUSED") and "RAY_AUTH_MODE=token" in out["bad"], out["bad"]
        assert float(out["bad"].split()[1]) < 10
    finally:
        head.stdin.close()
        head.wait(timeout=60)


def test_report_payload_counts_probe_scalars():
    r = WorkerReport(0, [(0, 1.0), (1, -2.0)], 0.5)
    assert r.payload_bytes() == 2 * 12 + 12
    gn = WorkerReport(0, [(0, 1.0)], 0.5, last=torch.zeros(17, dtype=torch.float64), w1=torch.zeros(2, 5))
    assert gn.payload_bytes() == 12 + 12 + 4 + 8 * 17 + 4 * 10  # element sizes as sent
    held = WorkerReport(0, [(0, 1.0)], 0.5, last=torch.zeros(17, dtype=torch.float64), damping=0.3)
    assert held.payload_bytes() == 12 + 12 + 4 + 8 + 8 * 17  # + the held-out check's 8-byte λ


def test_a_corrupted_replica_fails_the_job_at_the_next_step_with_a_named_reason(ray_local, tmp_path):
    """Every step each replica fingerprints the state it just updated; one corrupted replica is caught at once
    (the full digest would only run at the next checkpoint, 3 steps later)."""
    corrupted = []

    def progress(p):
        if p.step == 5 and not corrupted:
            names = [n for n in ray.util.list_named_actors() if n.startswith("sdze-") and n.endswith("-w1")]
            ray.get(ray.get_actor(names[0]).corrupt.remote(1e-6))
            corrupted.append(p.step)

    with pytest.raises(ReplicaMismatch, match=r"diverged at step 5: worker\(s\) 1 hold a different state"):
        solve_on_ray(make_spec(), tmp_path, progress=progress)
    assert corrupted == [5]
