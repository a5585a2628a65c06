"""Stopping a local Ray that this process started, completely.

When the service stopped, Ray's dashboard and runtime-env agents outlived it by a minute or more: they are
children of the raylet, and by the time the service's shutdown runs the raylet has often exited already (its
agents then belong to init and poll for their parent's death). So the processes below this one are recorded
while Ray runs (``watch``, right after it starts and again now and then), and at shutdown every recorded
process still alive — the same pid with the same start time, so never a recycled pid — is ended after
``ray.shutdown()`` and a grace period. Only processes this service started are ever signalled.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from pathlib import Path

log = logging.getLogger("sdze.service")


def descendant_pids(pid: int) -> list[int]:
    """Every process below ``pid`` (children, grandchildren, …), read from /proc; [] where /proc is absent."""
    kids: dict[int, list[int]] = {}
    proc = Path("/proc")
    if not proc.is_dir():
        return []
    for d in proc.iterdir():
        if not d.name.isdigit():
            continue
        try:
            ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        kids.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [pid]
    while todo:
        for c in kids.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def _start_time(pid: int) -> str | None:
    """The process's start time (clock ticks since boot, /proc/<pid>/stat field 22); None when it is gone or a
    zombie (exited; only its parent's wait() is missing)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] == "Z" else fields[19]


class LocalRay:
    """The processes of a local Ray started by this process: ``watch()`` records them, ``shutdown()`` ends them."""

    def __init__(self) -> None:
        self.pids: dict[int, str] = {}  # pid → start time

    def watch(self) -> None:
        """Record this process's current descendants (cheap: one pass over /proc)."""
        for pid in descendant_pids(os.getpid()):
            if pid not in self.pids and (st := _start_time(pid)) is not None:
                self.pids[pid] = st

    def _alive(self, pids: list[int]) -> list[int]:
        return [p for p in pids if _start_time(p) == self.pids[p]]

    def _wait_gone(self, pids: list[int], timeout: float) -> list[int]:
        deadline = time.monotonic() + timeout
        left = self._alive(pids)
        while left and time.monotonic() < deadline:
            time.sleep(0.1)
            left = self._alive(left)
        return left

    def shutdown(self, grace_s: float = 3.0) -> int:
        """``ray.shutdown()``, then SIGTERM (after ``grace_s`` SIGKILL) every recorded process still up.

        Returns how many had to be signalled."""
        import ray

        self.watch()
        ray.shutdown()
        left = self._wait_gone(list(self.pids), grace_s)
        lingering = len(left)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in left:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, sig)
            left = self._wait_gone(left, grace_s)
            if not left:
                break
        log.info("local Ray stopped: %d processes recorded, %d outlived ray.shutdown()", len(self.pids), lingering)
        return lingering
