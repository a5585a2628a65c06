"""Deterministic seed derivation shared by every worker (SPEC §2.5).

A seed is a pure function of integers, e.g. ``derive(job_seed, "batch", step, worker)``: every process
computes the same value with no communication, so exchanging a seed is as good as exchanging the
random numbers it generates (MeZO's seed-regenerated perturbations).
"""

from __future__ import annotations

import hashlib
import struct

import torch

_MASK63 = (1 << 63) - 1


def derive(*parts: int | str) -> int:
    """A 63-bit seed from a tuple of ints/strings, stable across platforms and Python versions."""
    h = hashlib.blake2b(digest_size=8)
    for p in parts:
        if isinstance(p, str):
            h.update(b"s" + p.encode())
        else:
            h.update(b"i" + struct.pack("<q", int(p)))
    return int.from_bytes(h.digest(), "little") & _MASK63


def generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A torch generator seeded with ``seed`` on ``device``."""
    return torch.Generator(device=device).manual_seed(int(seed))
