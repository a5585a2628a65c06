"""Connecting to Ray: an existing connection, ``RAY_ADDRESS`` / ``--ray-address``, or a local Ray in-process.

Token auth (Ray ≥ 2.52, on by default for clusters in 2.60): a client given ``host:port`` assumes auth is
disabled unless ``RAY_AUTH_MODE=token`` is set, and then retries ``InvalidAuthToken`` for ~20 s before a bare
``ConnectionError``. We probe the GCS once first (≈0.5 s) so a missing/wrong token fails fast with a message
that says what to set. ``RAY_AUTH_MODE`` / ``RAY_AUTH_TOKEN`` / ``RAY_AUTH_TOKEN_PATH`` pass through unchanged.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import ray

log = logging.getLogger(__name__)

# The object store only ever holds per-step report lists (bytes to KB); a small store keeps /dev/shm free.
LOCAL_OBJECT_STORE_BYTES = 256 * 2**20

AUTH_HELP = (
    "The cluster uses token authentication. Set RAY_AUTH_MODE=token and provide the cluster's token as "
    "RAY_AUTH_TOKEN, in a file named by RAY_AUTH_TOKEN_PATH, or in ~/.ray/auth_token "
    "(`ray get-auth-token` on the head node prints it)."
)


class RayConnectError(ConnectionError):
    """Ray could not be reached or refused our credentials."""


def _token_available() -> bool:
    if os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH"):
        return True
    return (Path.home() / ".ray" / "auth_token").is_file()


def _enable_token_auth() -> None:
    """Switch this process (and its children) to token auth.

    Ray 2.60's client sends no token to a ``host:port`` address unless ``RAY_AUTH_MODE=token``, and it caches the
    mode at import, so setting the variable alone is not enough; Ray's own helper also refreshes its config.
    Sending a token to a cluster without auth is accepted (measured), so this is safe whenever a token exists."""
    os.environ["RAY_AUTH_MODE"] = "token"
    try:
        from ray._private.authentication.authentication_token_setup import _enable_token_auth as enable

        enable()
    except ImportError:  # other Ray versions: the variable is all we can do
        pass


def _probe_gcs(address: str) -> None:
    """One GCS handshake: raises ``AuthenticationError`` in ~0.5 s on a bad/missing token."""
    from ray._raylet import GcsClient  # Ray's own client; no public equivalent with this fast failure

    GcsClient(address=address)


def _preflight(address: str) -> None:
    """Fail fast on auth problems for a ``host:port`` address (``auto`` and ``ray://`` are left to Ray)."""
    if address == "auto" or "://" in address:
        return
    try:
        _probe_gcs(address)
    except ray.exceptions.AuthenticationError as e:
        raise RayConnectError(f"Ray at {address} rejected the connection: {AUTH_HELP}") from e
    except Exception as e:
        raise RayConnectError(f"cannot reach the Ray cluster at {address}: {e}") from e


def connect(ray_address: str | None = None, *, min_cpus: int = 1) -> bool:
    """Make sure this process is connected to Ray; returns True if this call started a local Ray.

    An existing connection (``ray.is_initialized()``) is reused as is. Otherwise ``ray_address`` or
    ``RAY_ADDRESS`` is attached to, else a local Ray is started in-process with at least ``min_cpus`` logical
    CPUs (so a job asking for more workers than cores still runs, oversubscribed, on one machine).
    """
    if ray.is_initialized():
        return False
    address = ray_address or os.environ.get("RAY_ADDRESS") or None
    if address:
        if os.environ.get("RAY_AUTH_MODE") is None and _token_available():
            _enable_token_auth()
        _preflight(address)
        try:
            ray.init(address=address, log_to_driver=False)
        except ConnectionError as e:
            raise RayConnectError(f"cannot connect to Ray at {address}: {e}") from e
        return False
    ray.init(
        # "local": a new in-process Ray even when `ray start` left a cluster on this machine — without it ray.init()
        # attaches to /tmp/ray/ray_current_cluster, and then refuses num_cpus (seen: a test suite's service attached
        # to another suite's two-node rehearsal cluster and its dispatcher failed to start)
        address="local",
        num_cpus=max(os.cpu_count() or 1, min_cpus),
        include_dashboard=False,
        log_to_driver=False,
        object_store_memory=LOCAL_OBJECT_STORE_BYTES,
    )
    return True
