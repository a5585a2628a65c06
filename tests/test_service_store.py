"""Job store and settings, without a server: idempotency, queue bound, cursor pages, claims, reconcile."""

from __future__ import annotations

import pytest

from service.job_store import IdempotencyConflict, JobStore, NotCancellable, QueueFull
from service.schemas import decode_cursor, encode_cursor
from service.settings import Settings

SPEC = {"problem": {"name": "poisson_two_body", "dim": 20}}


@pytest.fixture
def store(tmp_path):
    s = JobStore(f"sqlite:///{tmp_path / 'jobs.db'}")
    yield s
    s.close()


def test_idempotency_and_queue_bound(store):
    a, created = store.create_job("alice", SPEC, "sha1", "key-1", max_queue=3)
    assert created and a.state == "queued"
    b, created = store.create_job("alice", SPEC, "sha1", "key-1", max_queue=3)
    assert not created and b.id == a.id
    with pytest.raises(IdempotencyConflict):
        store.create_job("alice", SPEC, "sha2", "key-1", max_queue=3)
    # Keys are per owner: bob's "key-1" is a different job.
    c, created = store.create_job("bob", SPEC, "sha2", "key-1", max_queue=3)
    assert created and c.id != a.id
    store.create_job("bob", SPEC, "sha3", None, max_queue=3)
    with pytest.raises(QueueFull):
        store.create_job("bob", SPEC, "sha4", None, max_queue=3)


def test_cursor_pages_newest_first_and_owner_filter(store):
    ids = [store.create_job("alice", SPEC, f"s{i}", None, 100)[0].id for i in range(7)]
    store.create_job("bob", SPEC, "b", None, 100)
    seen, cursor = [], None
    while True:
        page, more = store.list("alice", limit=3, before_num=cursor)
        seen += [j.id for j in page]
        if not more:
            break
        cursor = decode_cursor(encode_cursor(page[-1].num))
    assert seen == ids[::-1]
    assert len(store.list(None, limit=100)[0]) == 8


def test_claim_cancel_and_reconcile(store):
    j1 = store.create_job("a", SPEC, "1", None, 10)[0]
    j2 = store.create_job("a", SPEC, "2", None, 10)[0]
    j3 = store.create_job("a", SPEC, "3", None, 10)[0]
    assert store.claim_next().id == j1.id
    assert store.claim_next().id == j2.id
    assert store.request_cancel(j3.id).state == "cancelled"  # queued: cancelled at once
    assert store.request_cancel(j2.id).cancel_requested  # running: flagged
    with pytest.raises(NotCancellable):
        store.request_cancel(j3.id)
    assert store.reconcile(max_attempts=3) == [j1.id]
    assert store.get(j1.id).state == "queued"
    assert store.get(j2.id).state == "cancelled"
    kinds = [(e.kind, e.data.get("state")) for e in store.events_after(j1.id)]
    assert kinds == [("state", "queued"), ("state", "running"), ("state", "queued")]
    assert [e.seq for e in store.events_after(j1.id, 1)] == [2, 3]
    assert store.count_by_state()["queued"] == 1


def test_settings_env_and_loopback_rule():
    s = Settings.from_env({"SDZE_TOKENS": "token-aaaa, token-bbbb", "SDZE_MAX_QUEUE": "5", "RAY_ADDRESS": "auto"})
    assert s.tokens == ["token-aaaa", "token-bbbb"] and s.max_queue == 5 and s.ray_address == "auto"
    Settings(host="127.0.0.1").check()
    with pytest.raises(ValueError, match="needs bearer tokens"):
        Settings(host="0.0.0.0").check()
    Settings(host="0.0.0.0", tokens=["token-aaaa"]).check()
    with pytest.raises(ValueError):
        Settings(tokens=["short"])


def test_bad_tokens_are_refused_without_echoing_them():
    """``SDZE_TOKENS=alpha,beta``: a clean one-line reason naming the variable, never the values."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {**os.environ, "SDZE_TOKENS": "alpha,beta-is-long-enough,gamma"}
    p = subprocess.run(
        [sys.executable, "-m", "service.cli", "serve", "--port", "0", "--data-dir", "/tmp/sdze-never-created"],
        cwd=Path(__file__).resolve().parents[1],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = p.stdout + p.stderr
    assert p.returncode != 0 and "SDZE_TOKENS" in out and "token(s) 1, 3 of 3" in out, out
    for secret in ("alpha", "beta-is-long-enough", "gamma"):
        assert secret not in out, out
    assert "Traceback" not in out and "input_value" not in out
    with pytest.raises(ValueError) as e:
        Settings(tokens=["short-1"])
    assert "short-1" not in str(e.value)


def test_host_allowlist_setting():
    from service.edge import host_name

    assert Settings().host_allowlist == {"localhost", "127.0.0.1", "::1", "ip6-localhost"}
    assert Settings(tokens=["token-aaaa"]).host_allowlist is None  # tokens guard a served name
    assert Settings.from_env({"SDZE_ALLOWED_HOSTS": "sdze.lab, [::1]"}).host_allowlist == {"sdze.lab", "::1"}
    assert Settings(allowed_hosts=["*"]).host_allowlist is None
    cases = {"Example.org:80": "example.org", "[::1]:8000": "::1", "127.0.0.1": "127.0.0.1", "::1": "::1", "": ""}
    for raw, name in cases.items():
        assert host_name(raw) == name, raw


def test_placement_and_waiting_reasons():
    from sdze_core.spec import JobSpec
    from service.admission import Capacity, Node, bundles_that_fit, waiting_reason

    gib = 1 << 30
    nodes = (Node(cpus=4, gpus=1, memory=16 * gib), Node(cpus=2, gpus=0, memory=64 * gib))
    assert bundles_that_fit(nodes, gpus=0, memory=0) == 6
    assert bundles_that_fit(nodes, gpus=0, memory=10 * gib) == 1 + 2  # memory binds on the first node
    assert bundles_that_fit(nodes, gpus=0.5, memory=0) == 2  # only the first node has GPUs
    spec = JobSpec.model_validate({"problem": {"name": "poisson_two_body", "dim": 20}, "resources": {"workers": 2}})
    cap = Capacity(nodes, free_cpus=6, free_gpus=1)
    assert waiting_reason(spec, None, 0, 0) == "waiting for the Ray cluster"
    assert waiting_reason(spec, cap, 0, 0) is None
    # Ray still shows 6 free, but jobs of ours not yet placed hold 5: only 1 is really free.
    assert waiting_reason(spec, cap, 5, 0) == "waiting for resources: needs 2 CPUs (1 free)"
    big = spec.model_copy(update={"resources": spec.resources.model_copy(update={"workers": 7})})
    assert "autoscaling" in waiting_reason(big, cap, 0, 0)


def test_memory_limit_sources():
    from service.admission import Capacity, Node, machine_memory_bytes, memory_limit

    cap = Capacity((Node(4, 0, 8 << 30), Node(8, 0, 32 << 30)), 12, 0)
    assert memory_limit(Settings(), cap) == (32 << 30, "the largest Ray node's memory")
    assert memory_limit(Settings(), None) == (machine_memory_bytes(), "this machine's memory")
    assert memory_limit(Settings(max_job_memory_bytes=1 << 30), cap)[0] == 1 << 30
    assert memory_limit(Settings(autoscaling=True), cap)[0] == 0  # future nodes unknown: only a set limit
