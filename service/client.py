"""A small Python client for the job service (httpx)."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

TERMINAL = ("succeeded", "failed", "cancelled")


class ApiError(RuntimeError):
    """A problem+json answer (or any non-2xx): ``status`` and the parsed ``problem``."""

    def __init__(self, status: int, problem: dict):
        self.status, self.problem = status, problem
        super().__init__(f"{status} {problem.get('title', '')}: {problem.get('detail', '')}".strip())


class Client:
    """``Client("http://127.0.0.1:8000", token=...)``; token defaults to ``SDZE_TOKEN``."""

    def __init__(self, base_url: str = "http://127.0.0.1:8000", token: str | None = None, timeout: float = 30.0):
        token = token if token is not None else os.environ.get("SDZE_TOKEN")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check(self, r: httpx.Response) -> httpx.Response:
        if r.status_code >= 400:
            try:
                problem = r.json()
            except ValueError:
                problem = {"detail": r.text[:500]}
            raise ApiError(r.status_code, problem)
        return r

    # ------------------------------------------------------------------------------------------ jobs
    def submit(self, spec: dict, idempotency_key: str | None = None) -> dict:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self._check(self.http.post("/v1/jobs", json=spec, headers=headers)).json()

    def get(self, job_id: str) -> dict:
        return self._check(self.http.get(f"/v1/jobs/{job_id}")).json()

    def list(self, state: str | None = None, limit: int = 20, after: str | None = None) -> dict:
        params = {k: v for k, v in {"state": state, "limit": limit, "after": after}.items() if v is not None}
        return self._check(self.http.get("/v1/jobs", params=params)).json()

    def iter_jobs(self, state: str | None = None, page: int = 100) -> Iterator[dict]:
        after = None
        while True:
            r = self.list(state, page, after)
            yield from r["data"]
            if not r["has_more"]:
                return
            after = r["next_cursor"]

    def cancel(self, job_id: str) -> dict:
        return self._check(self.http.post(f"/v1/jobs/{job_id}/cancel")).json()

    def events(self, job_id: str, after: int = 0) -> Iterator[dict]:
        """Follow the SSE stream (resuming with Last-Event-ID after a dropped connection) until the job ends."""
        last = after
        while True:
            headers = {"Accept": "text/event-stream", "Last-Event-ID": str(last)}
            ended = False
            try:
                with self.http.stream("GET", f"/v1/jobs/{job_id}/events", headers=headers, timeout=None) as r:
                    self._check_stream(r)
                    for ev in _parse_sse(r.iter_lines()):
                        if ev.get("id"):
                            last = int(ev["id"])
                        data = json.loads(ev["data"]) if ev.get("data") else {}
                        yield {"seq": last, "kind": ev.get("event", "message"), **data}
                        if ev.get("event") == "state" and data.get("state") in TERMINAL:
                            ended = True
                ended = True  # the server closes the stream only after the job ended
            except (httpx.RemoteProtocolError, httpx.ReadError):
                pass
            if ended:
                return

    def _check_stream(self, r: httpx.Response) -> None:
        if r.status_code >= 400:
            r.read()
            self._check(r)

    def wait(self, job_id: str) -> dict:
        for _ in self.events(job_id):
            pass
        return self.get(job_id)

    # ------------------------------------------------------------------------------------- artifacts
    def artifacts(self, job_id: str) -> list[dict]:
        return self._check(self.http.get(f"/v1/jobs/{job_id}/artifacts")).json()["data"]

    def artifact_json(self, job_id: str, name: str) -> Any:
        """A JSON artifact (metrics.json, time_slices.json) parsed."""
        return self._check(self.http.get(f"/v1/jobs/{job_id}/artifacts/{name}")).json()

    def download(self, job_id: str, name: str, dest: Path) -> Path:
        dest = Path(dest)
        if dest.is_dir():
            dest = dest / name
        with self.http.stream("GET", f"/v1/jobs/{job_id}/artifacts/{name}") as r:
            self._check_stream(r)
            with dest.open("wb") as fh:
                for chunk in r.iter_bytes(1 << 20):
                    fh.write(chunk)
        return dest

    def evaluate(self, job_id: str, points: Any) -> Any:
        """Points as a list of lists → list of floats; as a numpy array → numpy array (sent as .npy)."""
        import numpy as np

        if isinstance(points, np.ndarray):
            buf = io.BytesIO()
            np.save(buf, np.ascontiguousarray(points, dtype=np.float64), allow_pickle=False)
            r = self.http.post(
                f"/v1/jobs/{job_id}/evaluate",
                content=buf.getvalue(),
                headers={"Content-Type": "application/x-npy", "Accept": "application/x-npy"},
            )
            return np.load(io.BytesIO(self._check(r).content), allow_pickle=False)
        r = self.http.post(f"/v1/jobs/{job_id}/evaluate", json={"points": points})
        return self._check(r).json()["u"]


def _parse_sse(lines: Iterator[str]) -> Iterator[dict]:
    ev: dict[str, str] = {}
    for line in lines:
        if line == "":
            if "data" in ev or "event" in ev:
                yield ev
            ev = {}
        elif line.startswith(":"):
            continue
        else:
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            ev[field] = ev[field] + "\n" + value if field == "data" and "data" in ev else value
