import os

# One intra-op thread everywhere: test problems are tiny, and on a loaded 2-core machine OpenMP threads that
# spin-wait for each other make small kernels 10–20× slower (measured). Subprocesses inherit the variable.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

torch.set_num_threads(1)
