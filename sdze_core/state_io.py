"""Checkpoint tensors read back in place: restoring a state never holds a second copy of the weights.

``safetensors.torch.load_file`` (and ``safe_open(...).get_slice``) materialize each tensor whole before it can be
copied into the live model: at d = 10^7 that is a second 5.1 GB W₁ beside the live one, for every resume and for
restoring the best state at export. Here the file's header is parsed (the safetensors layout: an 8-byte
little-endian header length, a JSON header with each tensor's dtype, shape and byte range, then the raw
little-endian bytes) and each live tensor's bytes are read straight into its storage (``readinto``); on a device
other than the CPU, through a CPU buffer of at most ``BLOCK_BYTES``. Tensors the caller does not hold (the
engine's small state) are loaded normally.
"""

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path

import torch
from safetensors import safe_open
from torch import Tensor

BLOCK_BYTES = 1 << 25  # 32 MiB per read (and the CPU staging buffer for device tensors)
DTYPE_CODES = {
    torch.float64: "F64",
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.int16: "I16",
    torch.int8: "I8",
    torch.uint8: "U8",
    torch.bool: "BOOL",
}


def read_header(path: Path) -> tuple[dict, int]:
    """(header without ``__metadata__``, byte offset of the data section) of a safetensors file."""
    with open(path, "rb") as fh:
        (n,) = struct.unpack("<Q", fh.read(8))
        header = json.loads(fh.read(n))
    header.pop("__metadata__", None)
    return header, 8 + n


def _can_stream(target: Tensor, info: dict) -> bool:
    return (
        sys.byteorder == "little"
        and DTYPE_CODES.get(target.dtype) == info["dtype"]
        and list(target.shape) == list(info["shape"])
        and target.is_contiguous()
    )


def _read_bytes(fh, target: Tensor, nbytes: int) -> None:
    """Fill ``target`` (contiguous) with the next ``nbytes`` bytes of ``fh``."""
    flat = target.detach().reshape(-1).view(torch.uint8)
    if flat.device.type == "cpu":
        view = memoryview(flat.numpy())
        got = 0
        while got < nbytes:
            k = fh.readinto(view[got : got + min(BLOCK_BYTES, nbytes - got)])
            if not k:
                raise EOFError(f"checkpoint truncated: {got} of {nbytes} bytes")
            got += k
        return
    buf = torch.empty(min(BLOCK_BYTES, max(nbytes, 1)), dtype=torch.uint8)
    for start in range(0, nbytes, BLOCK_BYTES):
        k = min(BLOCK_BYTES, nbytes - start)
        _read_bytes(fh, buf[:k], k)
        flat[start : start + k].copy_(buf[:k])


@torch.no_grad()
def load_into(path: Path, targets: dict[str, Tensor]) -> dict[str, Tensor]:
    """Fill every tensor of ``targets`` in place from the safetensors file ``path``; return the file's other
    tensors, loaded whole on the CPU. A target whose dtype, shape or layout differs from the stored tensor is
    copied (with conversion) from a loaded one instead. Raises KeyError when a target is not in the file."""
    path = Path(path)
    header, base = read_header(path)
    missing = [k for k in targets if k not in header]
    if missing:
        raise KeyError(f"{path}: no tensor(s) {', '.join(missing)}")
    rest: dict[str, Tensor] = {}
    fallback = [k for k, t in targets.items() if not _can_stream(t, header[k])]
    with open(path, "rb", buffering=0) as fh:
        for name in sorted(targets, key=lambda k: header[k]["data_offsets"][0]):
            if name in fallback:
                continue
            start, end = header[name]["data_offsets"]
            fh.seek(base + start)
            _read_bytes(fh, targets[name], end - start)
    with safe_open(str(path), "pt") as fh:
        for name in fallback:
            targets[name].copy_(fh.get_tensor(name))
        for name in header:
            if name not in targets:
                rest[name] = fh.get_tensor(name)
    return rest
