"""Can the MLP learn HJB (Cole–Hopf)'s x-dependence at all? A ceiling for the PDE solve, outside the engine.

    OMP_NUM_THREADS=1 python benchmarks/hjb_learnability.py supervised --width 128 --bias 0 --steps 5000 [--radial]
    OMP_NUM_THREADS=1 python benchmarks/hjb_learnability.py pinn --seconds 400 [--radial]

Along the law N(0, 2tI) u* ≈ log((1 + 2d + s)/2), s = |x|² − 2dt: a function of s (affine in s to rel 1.6e-3 at
d = 100), so beating the flat null u ≡ c means learning |x|². Both modes use the catalogue problem's points
(``sample_points``) and its quadrature u*, 2 000 test points from the same law, the MLP of the runs (depth 4, tanh,
PyTorch's init), Adam lr 1e-3, batch 100, one thread; rel L2 on the test points every so often.

- ``supervised``: regression on exact labels u* (a pool of 60 000 points, cached in /tmp): no PDE, no estimator, full
  backprop — what the network can learn from perfect data in that many steps. ``--bias B`` draws the first layer's
  biases from U(−B, B) (0: the default law); ``--radial`` appends the input |x|²/(2d).
- ``pinn``: an autograd PINN of the soft-rule loss (mean R̂² with 16 SDGD coordinates + 20·mean (u − g)² on 25
  terminal rows at t = T), the loss ``sdgd_adam`` minimises, written out here so that the input can carry |x|²/(2d).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sdze_core.parabolic.problems import make_parabolic_problem  # noqa: E402
from sdze_core.parabolic.sampling import sample_points  # noqa: E402
from sdze_core.seeds import generator  # noqa: E402


def data(p, d):
    f = f"/tmp/hjb_learnability_pool{d}.pt"
    if os.path.exists(f):
        return torch.load(f)
    pool = sample_points(p, 60000, generator(7), torch.float64)
    test = sample_points(p, 2000, generator(8), torch.float64)
    out = (pool, p.u_exact(pool[:, :d], pool[:, d]), test, p.u_exact(test[:, :d], test[:, d]))
    torch.save(out, f)
    return out


def mlp(din, width, dtype):
    torch.manual_seed(0)
    layers = [torch.nn.Linear(din, width), torch.nn.Tanh()]
    for _ in range(2):
        layers += [torch.nn.Linear(width, width), torch.nn.Tanh()]
    return torch.nn.Sequential(*layers, torch.nn.Linear(width, 1)).to(dtype)


def supervised(a, p, d, rows):
    pool, ypool, test, ytest = data(p, d)
    if a.radial:
        aug = lambda z: torch.cat([z, z[:, :d].square().sum(1, keepdim=True) / (2 * d)], 1)  # noqa: E731
        pool, test = aug(pool), aug(test)
    net = mlp(d + 1 + int(a.radial), a.width, torch.float64)
    with torch.no_grad():
        if a.bias > 0:
            net[0].bias.uniform_(-a.bias, a.bias)
        net[-1].bias.fill_(float(ypool.mean()))
    opt = torch.optim.Adam(net.parameters(), a.lr)
    g = torch.Generator().manual_seed(0)
    t0 = time.perf_counter()
    for it in range(a.steps + 1):
        idx = torch.randint(0, pool.shape[0], (100,), generator=g)
        loss = (net(pool[idx])[:, 0] - ypool[idx]).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if it % max(1, a.steps // 5) == 0:
            with torch.no_grad():
                r = net(test)[:, 0] - ytest
            rows.append({"step": it, "s": round(time.perf_counter() - t0, 1), "rel_l2": float(r.norm() / ytest.norm())})
            print(rows[-1], flush=True)
    return float((ytest - ytest.mean()).norm() / ytest.norm())


def pinn(a, p, d, rows, S=16):
    _, _, test, ytest = data(p, d)
    test = test.float()
    net = mlp(d + 1 + int(a.radial), a.width, torch.float32)

    def u(x, t):
        z = [x, t[:, None]] + ([x.square().sum(1, keepdim=True) / (2 * d)] if a.radial else [])
        return net(torch.cat(z, 1))[:, 0]

    opt = torch.optim.Adam(net.parameters(), a.lr)
    g = torch.Generator().manual_seed(1)
    t0, it = time.perf_counter(), 0
    while time.perf_counter() - t0 < a.seconds:
        xt = sample_points(p, 100, g)
        x = xt[:, :d].requires_grad_(True)
        t = xt[:, d].clone().requires_grad_(True)
        uu = u(x, t)
        gx, gt = torch.autograd.grad(uu.sum(), (x, t), create_graph=True)
        idx = torch.randperm(d, generator=g)[:S]
        lap = sum(torch.autograd.grad(gx[:, i].sum(), x, create_graph=True)[0][:, i] for i in idx) * d / S
        R = gt + lap - gx[:, idx].square().sum(1) * d / S  # u_t + Δu − |∇u|², SDGD
        xT = torch.randn(25, d, generator=g) * math.sqrt(2 * p.nu * p.T)
        gT = p.terminal.value(xT.double()).float()
        loss = R.square().mean() + 20 * (u(xT, torch.full((25,), p.T)) - gT).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        it += 1
        if it % 250 == 0:
            with torch.no_grad():
                r = u(test[:, :d], test[:, d]).double() - ytest
            rows.append(
                {
                    "step": it,
                    "s": round(time.perf_counter() - t0, 1),
                    "rel_l2": float(r.norm() / ytest.norm()),
                    "loss": float(loss.detach()),
                }
            )
            print(rows[-1], flush=True)
    return float((ytest - ytest.mean()).norm() / ytest.norm())


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=("supervised", "pinn"))
    ap.add_argument("--dim", type=int, default=100)
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--bias", type=float, default=0.0)
    ap.add_argument("--steps", type=int, default=5000)
    ap.add_argument("--seconds", type=float, default=400)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--radial", action="store_true")
    ap.add_argument("--out", default=None, help="append this run to a JSON list")
    a = ap.parse_args()
    torch.set_num_threads(1)
    p = make_parabolic_problem("hjb_cole_hopf", a.dim)
    rows: list = []
    flat = (supervised if a.mode == "supervised" else pinn)(a, p, a.dim, rows)
    if a.out:
        old = json.loads(Path(a.out).read_text()) if Path(a.out).exists() else []
        old.append({"args": vars(a), "flat_null": flat, "rows": rows, "load1": os.getloadavg()[0]})
        Path(a.out).write_text(json.dumps(old, indent=1))


if __name__ == "__main__":
    main()
