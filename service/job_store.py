"""Durable job store on SQLAlchemy Core: jobs, their ordered events, and their artifacts.

SQLite (WAL) by default, any SQLAlchemy URL by configuration; the SQL stays portable (``UPDATE … RETURNING``
works on SQLite ≥ 3.35 and PostgreSQL). Only metadata lives here; artifact files live under the artifacts root.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

STATES = ("queued", "running", "succeeded", "failed", "cancelled")
TERMINAL = frozenset({"succeeded", "failed", "cancelled"})

metadata = sa.MetaData()

jobs = sa.Table(
    "jobs",
    metadata,
    # num orders jobs (newest first) and is the opaque cursor's content; id is the public name.
    sa.Column("num", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("id", sa.String(40), nullable=False, unique=True),
    sa.Column("owner", sa.String(64), nullable=False),
    sa.Column("state", sa.String(16), nullable=False, index=True),
    sa.Column("reason", sa.Text),
    sa.Column("spec_json", sa.Text, nullable=False),
    sa.Column("spec_sha256", sa.String(64), nullable=False),
    sa.Column("idem_key", sa.String(256)),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("started_at", sa.Float),
    sa.Column("finished_at", sa.Float),
    sa.Column("progress_json", sa.Text),
    sa.Column("metrics_json", sa.Text),
    sa.Column("attempt", sa.Integer, nullable=False, default=0),
    sa.Column("cancel_requested", sa.Boolean, nullable=False, default=False),
    sa.Column("last_seq", sa.Integer, nullable=False, default=0),
    sa.UniqueConstraint("owner", "idem_key", name="uq_jobs_owner_idem"),
)

events = sa.Table(
    "events",
    metadata,
    sa.Column("job_id", sa.String(40), sa.ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("ts", sa.Float, nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("data_json", sa.Text, nullable=False),
)

artifacts = sa.Table(
    "artifacts",
    metadata,
    sa.Column("job_id", sa.String(40), sa.ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("media_type", sa.String(100), nullable=False),
)


class QueueFull(Exception):
    """The queue holds ``max_queue`` jobs already."""


class IdempotencyConflict(Exception):
    """The Idempotency-Key was used before with a different body."""


class NotCancellable(Exception):
    """The job is already in a terminal state."""


@dataclass(frozen=True)
class Job:
    num: int
    id: str
    owner: str
    state: str
    reason: str | None
    spec: dict
    spec_sha256: str
    idem_key: str | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    progress: dict
    metrics: dict | None
    attempt: int
    cancel_requested: bool
    last_seq: int

    @classmethod
    def from_row(cls, r: Any) -> Job:
        m = r._mapping
        return cls(
            num=m["num"],
            id=m["id"],
            owner=m["owner"],
            state=m["state"],
            reason=m["reason"],
            spec=json.loads(m["spec_json"]),
            spec_sha256=m["spec_sha256"],
            idem_key=m["idem_key"],
            created_at=m["created_at"],
            started_at=m["started_at"],
            finished_at=m["finished_at"],
            progress=json.loads(m["progress_json"]) if m["progress_json"] else {},
            metrics=json.loads(m["metrics_json"]) if m["metrics_json"] else None,
            attempt=m["attempt"],
            cancel_requested=bool(m["cancel_requested"]),
            last_seq=m["last_seq"],
        )


@dataclass(frozen=True)
class Event:
    seq: int
    ts: float
    kind: str
    data: dict


def _dumps(obj: Any) -> str:
    """JSON without NaN/inf (they are not JSON): non-finite floats become null."""

    def clean(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [clean(x) for x in v]
        return v

    return json.dumps(clean(obj), separators=(",", ":"), sort_keys=True)


def make_engine(url: str) -> Engine:
    """An engine with SQLite's WAL pragmas set on every connection (they are per connection)."""
    if url.startswith("sqlite"):
        # A pool as large as the request thread pool (40): WAL readers never block each other, so a request
        # should never wait for a pooled connection.
        engine = sa.create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, pool_size=40, max_overflow=20
        )

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _rec: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    return sa.create_engine(url, pool_pre_ping=True)


class JobStore:
    """All reads and writes of job state; safe to share between threads (one connection per call)."""

    def __init__(self, url: str):
        self.engine = make_engine(url)
        self.local = url.startswith("sqlite")
        metadata.create_all(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    def ping(self) -> None:
        with self.engine.connect() as c:
            c.execute(sa.select(1))

    # ------------------------------------------------------------------------------------------ jobs
    def create_job(
        self, owner: str, spec: dict, spec_sha256: str, idem_key: str | None, max_queue: int
    ) -> tuple[Job, bool]:
        """Insert a queued job; with an idempotency key already used by ``owner``, return that job instead.

        Returns (job, created). Raises ``IdempotencyConflict`` when the key came with a different spec and
        ``QueueFull`` when ``max_queue`` jobs are queued.
        """
        if idem_key is not None:
            old = self._by_idem(owner, idem_key)
            if old is not None:
                return self._replay(old, spec_sha256), False
        now = time.time()
        job_id = "job_" + uuid.uuid4().hex[:20]
        try:
            with self.engine.begin() as c:
                queued = c.execute(sa.select(sa.func.count()).select_from(jobs).where(jobs.c.state == "queued"))
                if queued.scalar_one() >= max_queue:
                    raise QueueFull()
                c.execute(
                    jobs.insert().values(
                        id=job_id,
                        owner=owner,
                        state="queued",
                        spec_json=_dumps(spec),
                        spec_sha256=spec_sha256,
                        idem_key=idem_key,
                        created_at=now,
                        attempt=0,
                        cancel_requested=False,
                        last_seq=0,
                    )
                )
                self._event(c, job_id, "state", {"state": "queued", "reason": "submitted"})
        except IntegrityError:
            # Two requests with the same key raced; the first insert won.
            old = self._by_idem(owner, idem_key) if idem_key else None
            if old is None:
                raise
            return self._replay(old, spec_sha256), False
        job = self.get(job_id)
        assert job is not None
        return job, True

    @staticmethod
    def _replay(old: Job, spec_sha256: str) -> Job:
        if old.spec_sha256 != spec_sha256:
            raise IdempotencyConflict()
        return old

    def _by_idem(self, owner: str, key: str) -> Job | None:
        with self.engine.connect() as c:
            r = c.execute(sa.select(jobs).where(jobs.c.owner == owner, jobs.c.idem_key == key)).first()
        return Job.from_row(r) if r else None

    def get(self, job_id: str, owner: str | None = None) -> Job | None:
        q = sa.select(jobs).where(jobs.c.id == job_id)
        if owner is not None:
            q = q.where(jobs.c.owner == owner)
        with self.engine.connect() as c:
            r = c.execute(q).first()
        return Job.from_row(r) if r else None

    def list(
        self, owner: str | None, state: str | None = None, limit: int = 20, before_num: int | None = None
    ) -> tuple[list[Job], bool]:
        """Newest first; ``before_num`` is the cursor (the ``num`` of the last job of the previous page)."""
        q = sa.select(jobs).order_by(jobs.c.num.desc()).limit(limit + 1)
        if owner is not None:
            q = q.where(jobs.c.owner == owner)
        if state is not None:
            q = q.where(jobs.c.state == state)
        if before_num is not None:
            q = q.where(jobs.c.num < before_num)
        with self.engine.connect() as c:
            rows = c.execute(q).all()
        return [Job.from_row(r) for r in rows[:limit]], len(rows) > limit

    def count_by_state(self) -> dict[str, int]:
        with self.engine.connect() as c:
            rows = c.execute(sa.select(jobs.c.state, sa.func.count()).group_by(jobs.c.state)).all()
        out = dict.fromkeys(STATES, 0)
        out.update({s: n for s, n in rows})
        return out

    def queued_ahead(self, num: int) -> int:
        with self.engine.connect() as c:
            q = sa.select(sa.func.count()).select_from(jobs).where(jobs.c.state == "queued", jobs.c.num < num)
            return c.execute(q).scalar_one()

    # ------------------------------------------------------------------------------ state transitions
    def queued(self, limit: int = 100) -> list[Job]:
        """The oldest ``limit`` queued jobs, oldest first (the dispatcher's candidates)."""
        q = sa.select(jobs).where(jobs.c.state == "queued").order_by(jobs.c.num).limit(limit)
        with self.engine.connect() as c:
            return [Job.from_row(r) for r in c.execute(q).all()]

    def set_waiting(self, job_id: str, reason: str) -> bool:
        """A queued job's reason (what it waits for); a ``state`` event when it changed. Returns whether it did."""
        with self.engine.begin() as c:
            r = c.execute(
                jobs.update()
                .where(
                    jobs.c.id == job_id,
                    jobs.c.state == "queued",
                    sa.or_(jobs.c.reason.is_(None), jobs.c.reason != reason),
                )
                .values(reason=reason)
                .returning(jobs.c.id)
            ).first()
            if r is None:
                return False
            self._event(c, job_id, "state", {"state": "queued", "reason": reason})
        return True

    def claim_next(self) -> Job | None:
        """Atomically move the oldest queued job to running (a no-op race loser gets None)."""
        return self.claim(None)

    def claim(self, job_id: str | None) -> Job | None:
        """Atomically move queued job ``job_id`` (None: the oldest) to running; None if it is no longer queued."""
        with self.engine.begin() as c:
            if job_id is None:
                target = (
                    jobs.c.num == sa.select(sa.func.min(jobs.c.num)).where(jobs.c.state == "queued").scalar_subquery()
                )
            else:
                target = jobs.c.id == job_id
            r = c.execute(
                jobs.update()
                .where(target, jobs.c.state == "queued")
                .values(state="running", started_at=time.time(), attempt=jobs.c.attempt + 1, reason=None)
                .returning(jobs.c.id)
            ).first()
            if r is None:
                return None
            job_id = r[0]
            self._event(c, job_id, "state", {"state": "running"})
        return self.get(job_id)

    def set_progress(self, job_id: str, progress: dict, kind: str | None = "progress") -> None:
        """Store the latest progress and (unless ``kind`` is None) append it as an event."""
        with self.engine.begin() as c:
            c.execute(jobs.update().where(jobs.c.id == job_id).values(progress_json=_dumps(progress)))
            if kind:
                self._event(c, job_id, kind, progress)

    def finish(self, job_id: str, state: str, reason: str | None, metrics: dict | None = None) -> None:
        assert state in TERMINAL
        with self.engine.begin() as c:
            c.execute(
                jobs.update()
                .where(jobs.c.id == job_id)
                .values(
                    state=state,
                    reason=reason,
                    finished_at=time.time(),
                    metrics_json=_dumps(metrics) if metrics is not None else None,
                )
            )
            self._event(c, job_id, "state", {"state": state, "reason": reason})

    def requeue(self, job_id: str, reason: str) -> bool:
        """Running → queued (a no-op for a job in any other state); returns whether it moved."""
        with self.engine.begin() as c:
            r = c.execute(
                jobs.update()
                .where(jobs.c.id == job_id, jobs.c.state == "running")
                .values(state="queued", reason=reason)
                .returning(jobs.c.id)
            ).first()
            if r is None:
                return False
            self._event(c, job_id, "state", {"state": "queued", "reason": reason})
        return True

    def request_cancel(self, job_id: str) -> Job:
        """Queued → cancelled at once; running → flagged (the dispatcher stops it at a step boundary)."""
        with self.engine.begin() as c:
            r = c.execute(
                jobs.update()
                .where(jobs.c.id == job_id, jobs.c.state == "queued")
                .values(state="cancelled", reason="cancelled before it started", finished_at=time.time())
                .returning(jobs.c.id)
            ).first()
            if r is not None:
                self._event(c, job_id, "state", {"state": "cancelled", "reason": "cancelled before it started"})
            else:
                r = c.execute(
                    jobs.update()
                    .where(jobs.c.id == job_id, jobs.c.state == "running")
                    .values(cancel_requested=True)
                    .returning(jobs.c.cancel_requested)
                ).first()
                if r is None:
                    raise NotCancellable()
        job = self.get(job_id)
        assert job is not None
        return job

    def cancel_requested(self, job_id: str) -> bool:
        with self.engine.connect() as c:
            return bool(c.execute(sa.select(jobs.c.cancel_requested).where(jobs.c.id == job_id)).scalar())

    def reconcile(self, max_attempts: int) -> list[str]:
        """After a restart: jobs left running are re-queued (they resume from their checkpoint).

        A job whose cancel was requested becomes cancelled; one that already used ``max_attempts`` runs fails.
        Returns the re-queued ids.
        """
        requeued = []
        with self.engine.connect() as c:
            rows = c.execute(sa.select(jobs).where(jobs.c.state == "running")).all()
        for r in rows:
            job = Job.from_row(r)
            if job.cancel_requested:
                self.finish(job.id, "cancelled", "cancelled (server restarted while stopping)")
            elif job.attempt >= max_attempts:
                self.finish(job.id, "failed", f"worker-lost: interrupted {job.attempt} times")
            else:
                self.requeue(job.id, "server restarted; resumes from its last checkpoint")
                requeued.append(job.id)
        return requeued

    # ---------------------------------------------------------------------------------------- events
    def _event(self, c: sa.Connection, job_id: str, kind: str, data: dict) -> int:
        # The job row's counter hands out gap-free sequence numbers atomically (SSE ids, Last-Event-ID).
        seq = c.execute(
            jobs.update().where(jobs.c.id == job_id).values(last_seq=jobs.c.last_seq + 1).returning(jobs.c.last_seq)
        ).scalar_one()
        c.execute(events.insert().values(job_id=job_id, seq=seq, ts=time.time(), kind=kind, data_json=_dumps(data)))
        return seq

    def add_event(self, job_id: str, kind: str, data: dict) -> int:
        with self.engine.begin() as c:
            return self._event(c, job_id, kind, data)

    def events_after(self, job_id: str, after_seq: int = 0, limit: int = 1000) -> list[Event]:
        q = (
            sa.select(events)
            .where(events.c.job_id == job_id, events.c.seq > after_seq)
            .order_by(events.c.seq)
            .limit(limit)
        )
        with self.engine.connect() as c:
            rows = c.execute(q).all()
        return [Event(r.seq, r.ts, r.kind, json.loads(r.data_json)) for r in rows]

    # ------------------------------------------------------------------------------------- artifacts
    def record_artifacts(self, job_id: str, items: list[dict]) -> None:
        with self.engine.begin() as c:
            c.execute(artifacts.delete().where(artifacts.c.job_id == job_id))
            if items:
                c.execute(artifacts.insert(), [{"job_id": job_id, **it} for it in items])

    def list_artifacts(self, job_id: str) -> list[dict]:
        q = sa.select(artifacts).where(artifacts.c.job_id == job_id).order_by(artifacts.c.name)
        with self.engine.connect() as c:
            return [dict(r._mapping) for r in c.execute(q).all()]
