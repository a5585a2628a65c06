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
        return
    except ray.exceptions.AuthenticationError as e:
        # The usual 2.60 pitfall: a token is at hand but RAY_AUTH_MODE is unset, so the client sends none.
        if os.environ.get("RAY_AUTH_MODE") is None and _token_available():
            os.environ["RAY_AUTH_MODE"] = "token"
            try:
                _probe_gcs(address)
                log.info("connected with RAY_AUTH_MODE=token (a token was available)")
                return
            except ray.exceptions.AuthenticationError:
                pass
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
        if os.environ.get("RAY_AUTH_MODE") is None and (
            os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH")
        ):
            os.environ["RAY_AUTH_MODE"] = "token"  # an explicit token means token auth
        _preflight(address)
        try:
            ray.init(address=address, log_to_driver=False)
        except ConnectionError as e:
            raise RayConnectError(f"cannot connect to Ray at {address}: {e}") from e
        return False
    ray.init(
        num_cpus=max(os.cpu_count() or 1, min_cpus),
        include_dashboard=False,
        log_to_driver=False,
        object_store_memory=LOCAL_OBJECT_STORE_BYTES,
    )
    return True
