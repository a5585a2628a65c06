import json
import os
import pathlib

import pytest

# One intra-op thread everywhere: test problems are tiny, and on a loaded 2-core machine OpenMP threads that
# spin-wait for each other make small kernels 10–20× slower (measured). Subprocesses inherit the variable.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

torch.set_num_threads(1)

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


@pytest.fixture(scope="session")
def reference() -> dict:
    return json.loads((SHARED / "reference" / "problems.json").read_text())
