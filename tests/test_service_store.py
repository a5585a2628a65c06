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
