"""The SDZE zeroth-order engine (SPEC §2.2–2.5, §2.7): evaluate seeded perturbations, apply (seed, δ).

One step t on worker w:
1. ``evaluate(t, w)``: draw the step's common random numbers (points X, spatial directions ξ) from
   ``seed(job, "batch", t, w)``; share W₁X and W₁ξ (and VᵀX, Vᵀξ) across all 2q evaluations; for each
   k < q draw the perturbation ``Z_k`` from ``seed(job, "pert", t, w, k)`` and measure
   δ_k = [L(θ+εZ_k) − L(θ−εZ_k)]/(2ε)   (two-point, CRNS)   or   δ_k = ⟨∇L, Z_k⟩ by forward-mode JVP.
2. ``apply(t, reports)``: every worker receives the same list of (worker, k, δ) and regenerates each Z_k
   from its seed. With δ̃ = clip(δ / RMS(δ)) and η_t the scheduled rate, per layer
   C ← C − η_t · momentum((1/Q) Σ δ̃_k S_k), Q = total probes; the low-rank update lives in r×r
   coordinates (W_eff = W + U C Vᵀ) and is folded into W when the bases refresh (annealed lazy schedule).
   The output layer is perturbed densely (update "sgd").
   Update "gn" (subspace Gauss–Newton): each worker measures the per-point Jacobian columns J Z_k and the
   exact output-layer columns, solves a Levenberg–Marquardt problem on its batch, and sends the
   coefficients a_k instead of δ_k; every replica applies θ ← θ + η_t/n_w Σ a_k Z_k. With w1_probes
   "jacobian" W₁'s columns are exact in the batch's data basis (2 tangent channels per output direction)
   and enter the solve as one column along their own damped minimum-norm step; the worker also sends
   those p × m' coefficients (m' ≤ N+S, independent of d).
Replicas stay identical because ``apply`` is a deterministic function of the reports (sorted).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

from .config import SolverConfig, ZOConfig
from .levenberg import levenberg_marquardt
from .model import MLP
from .problems import Problem
from .residual import BatchSource, StepBatch, residual, u_jet
from .schedule import LinearDecay
from .seeds import derive, generator
from .subspace import DataBasis, random_basis
from .tangent import hidden_jet_dual, residual_tangents
from .taylor import FirstLayer, LowRank, hidden_jet, jet_mul


@dataclass
class WorkerReport:
    """What one worker contributes to a step: its (k, scalar) probes and its CRN loss.

    The scalar is δ_k (update "sgd") or the Gauss–Newton coefficient a_k (update "gn"); with "gn" the
    report also carries the h+1 output-layer coefficients ``last`` (independent of d and of the hidden P).
    """

    worker: int
    probes: list[tuple[int, float]]
    loss: float
    last: Tensor | None = None  # subspace-GN coefficients of the output layer's h+1 coordinates
    w1: Tensor | None = None  # exact-Jacobian W₁ coefficients (p × m'): W₁ += U_p w1 Vᵀ in the batch's data basis

    def payload_bytes(self) -> int:
        """Bytes this report puts on the wire: 4-byte k and δ per probe, the loss, the GN coefficients."""
        n = 8 * len(self.probes) + 4 + 8
        for t in (self.last, self.w1):
            if t is not None:
                n += 4 * t.numel()
        return n


@dataclass
class _Layer:
    """Subspace state of one hidden weight matrix W (m × n)."""

    U: Tensor
    V: Tensor | None  # None for the data-aligned first layer (basis rebuilt every step)
    C: Tensor
    mom: Tensor


@dataclass
class _StepCtx:
    batch: StepBatch
    first: FirstLayer | None
    data_basis: DataBasis | None
    x_v: Tensor | None = None  # Vᵀx for a random first-layer basis
    d_v: Tensor | None = None


@dataclass
class SDZEEngine:
    problem: Problem
    model: MLP
    solver: SolverConfig
    job_seed: int
    schedule: LinearDecay
    dtype: torch.dtype = torch.float32
    device: str = "cpu"
    layers: list[_Layer] = field(default_factory=list)
    last_mom: Tensor | None = None
    rms2: float = 0.0
    refresh_index: int = 0
    next_refresh: int = 0
    full_mom: list[Tensor] = field(default_factory=list)  # optimizer_state "full": dense momentum per hidden W

    def __post_init__(self) -> None:
        cfg = self.cfg
        self.batches = BatchSource(self.problem, self.solver, self.job_seed, self.dtype, self.device)
        self._bases: list[tuple[StepBatch, DataBasis]] = []
        self._bases_step = -1
        if cfg.perturbation not in ("subspace", "full"):
            raise ValueError(f"unknown perturbation {cfg.perturbation!r}")
        if cfg.gradient == "forward" and cfg.perturbation == "full":
            raise ValueError("forward-mode gradients need subspace perturbations")
        if cfg.optimizer_state not in ("subspace", "full") or (cfg.optimizer_state == "full" and cfg.update != "sgd"):
            raise ValueError("optimizer_state must be 'subspace' or 'full' (full: with update 'sgd')")
        if cfg.w1_probes == "jacobian" and not (
            cfg.update == "gn" and cfg.gradient == "forward" and cfg.w1_basis == "data"
        ):
            raise ValueError("w1_probes='jacobian' needs update='gn', gradient='forward' and w1_basis='data'")
        h = self.model.width
        self.last_mom = torch.zeros(h + 1, dtype=self.dtype, device=self.device)
        if cfg.perturbation == "subspace":
            self._draw_bases()

    @property
    def cfg(self) -> ZOConfig:
        return self.solver.zo

    @property
    def _w1_jacobian(self) -> bool:
        return self.cfg.w1_probes == "jacobian"

    # ----------------------------------------------------------------------------------------- bases
    def _draw_bases(self) -> None:
        """Fold C into W and draw fresh bases from seed(job, "basis", j, l) (refresh j)."""
        cfg, m = self.cfg, self.model
        self.fold()
        self.layers = []
        for l in range(m.depth - 1):
            W = m.W[l]
            gen = generator(derive(self.job_seed, "basis", self.refresh_index, l), self.device)
            data = l == 0 and cfg.w1_basis == "data"
            r_out = cfg.w1_rank_out if l == 0 else cfg.rank
            U = random_basis(W.shape[0], r_out, gen, self.dtype, self.device)
            V = None if data else random_basis(W.shape[1], cfg.rank, gen, self.dtype, self.device)
            r_in = 0 if data else V.shape[1]
            C = torch.zeros(U.shape[1], r_in, dtype=self.dtype, device=self.device)
            self.layers.append(_Layer(U, V, C, torch.zeros_like(C)))
        K = min(cfg.refresh_max, math.ceil(cfg.refresh_every * cfg.refresh_growth**self.refresh_index))
        self.next_refresh += max(1, K)
        self.refresh_index += 1

    def fold(self) -> None:
        """Fold every pending C into W (W ← W + U C Vᵀ) without changing bases; exact-model export."""
        for lay, W in zip(self.layers, self.model.W, strict=False):
            if lay.V is not None and lay.C.abs().sum() > 0:
                W.addmm_(lay.U @ lay.C, lay.V.t())
                lay.C.zero_()

    def lowrank_terms(self, x: Tensor) -> list[LowRank | None]:
        """The pending W_eff − W = U C Vᵀ as low-rank terms for a plain forward at points x."""
        out: list[LowRank | None] = []
        for lay in self.layers:
            out.append(None if lay.V is None else LowRank(lay.V, lay.U @ lay.C))
        return out

    # ---------------------------------------------------------------------------------------- batches
    def _data_basis(self, batch: StepBatch) -> DataBasis:
        """The batch's aligned first-layer basis, built once per batch (evaluate and apply share it)."""
        for b, basis in self._bases:
            if b is batch:
                return basis
        basis = DataBasis.build(batch.x, batch.dirs)
        live = self.batches.live()  # drop bases of batches the batch cache has let go (older steps)
        self._bases = [(b, B) for b, B in self._bases if any(b is x for x in live)] + [(batch, basis)]
        return basis

    def make_batch(self, step: int, worker: int) -> StepBatch:
        """Worker w's CRN batch of step t (cached: ``apply`` reuses what ``evaluate`` drew)."""
        if step != self._bases_step:  # let go of the previous step's batches before drawing (4 GB each at 10^7)
            self._bases, self._bases_step = [], step
        return self.batches.get(step, worker)

    def _context(self, batch: StepBatch, first: bool = True) -> _StepCtx:
        m = self.model
        data = self._data_basis(batch) if self.layers and self.layers[0].V is None else None
        ctx = _StepCtx(batch, FirstLayer.compute(m.W[0], m.b[0], batch.x, batch.dirs) if first else None, data)
        if self.layers and self.layers[0].V is not None:
            ctx.x_v = batch.x @ self.layers[0].V
            ctx.d_v = batch.dirs.project(self.layers[0].V.t())
        return ctx

    # ----------------------------------------------------------------------------------- perturbations
    def _draw(self, step: int, worker: int, k: int, ctx: _StepCtx) -> dict[str, Tensor | list]:
        """Regenerate Z_k from seed(job, "pert", t, w, k): per-layer S, optional biases, output layer."""
        gen = generator(derive(self.job_seed, "pert", step, worker, k), self.device)
        cfg, m = self.cfg, self.model
        S: list[Tensor | None] = []
        for l, lay in enumerate(self.layers):
            if l == 0 and self._w1_jacobian:
                S.append(None)  # W₁ is covered by exact Jacobian columns, not by random probes
                continue
            r_in = ctx.data_basis.rank if (l == 0 and lay.V is None) else lay.V.shape[1]
            S.append(torch.randn(lay.U.shape[1], r_in, generator=gen, dtype=self.dtype, device=self.device))
        hb = []
        if cfg.perturb_hidden_bias:
            hb = [
                torch.randn(m.b[l].shape, generator=gen, dtype=self.dtype, device=self.device)
                for l in range(m.depth - 1)
            ]
        last = torch.randn(m.width + 1, generator=gen, dtype=self.dtype, device=self.device)
        return {"S": S, "hb": hb, "last": last}

    def _loss(self, ctx: _StepCtx, z: dict | None, eps: Tensor | float, batch: StepBatch | None = None):
        """L(θ_eff + eps·Z) = mean_n R_n² on the step's common random numbers; also returns φ and u jets."""
        R, phi, u = self._residual(ctx, z, eps, batch)
        return R.square().mean(), phi, u

    def _residual(self, ctx: _StepCtx, z: dict | None, eps: Tensor | float, batch: StepBatch | None = None):
        """Residuals R_n(θ_eff + eps·Z) (N,) with the implicit low-rank forward, plus the φ and u jets."""
        m, cfg = self.model, self.cfg
        batch = batch or ctx.batch
        lowrank: list[LowRank | None] = []
        for l, lay in enumerate(self.layers):
            if lay.V is None:  # data-aligned first layer: only the perturbation lives in the basis
                if z is None:
                    lowrank.append(None)
                    continue
                M = lay.U @ (eps * z["S"][0])
                lowrank.append(LowRank(V=None, M=M, xv=ctx.data_basis.xv, dv=ctx.data_basis.dv))
                continue
            Ceff = lay.C if z is None else lay.C + eps * z["S"][l]
            M = lay.U @ Ceff
            if l == 0:
                lowrank.append(LowRank(lay.V, M, xv=ctx.x_v, dv=ctx.d_v))
            else:
                lowrank.append(LowRank(lay.V, M))
        dense = None
        if z is not None and z["hb"]:
            dense = [(None, eps * z["hb"][l]) for l in range(m.depth - 1)]
        w, b = m.W[-1], m.b[-1]
        if z is not None and cfg.update == "sgd":
            w = w + eps * z["last"][:-1].unsqueeze(0)
            b = b + eps * z["last"][-1:]
        first = ctx.first if batch is ctx.batch else FirstLayer.compute(m.W[0], m.b[0], batch.x, batch.dirs)
        if batch is not ctx.batch and lowrank and lowrank[0] is not None and self.layers[0].V is not None:
            lowrank[0] = LowRank(
                self.layers[0].V, lowrank[0].M, batch.x @ self.layers[0].V, batch.dirs.project(self.layers[0].V.t())
            )
        phi = hidden_jet(first, m.W[1:-1], m.b[1:-1], self.problem.order, lowrank, dense)
        u = u_jet(batch, phi, w, b)
        return residual(self.problem, batch, u), phi, u

    # ---------------------------------------------------------------------------------------- evaluate
    @torch.no_grad()
    def evaluate(self, step: int, worker: int = 0) -> WorkerReport:
        """Measure δ_k for this worker's q seeded perturbations on its own CRN batch."""
        cfg = self.cfg
        batch = self.make_batch(step, worker)
        if cfg.perturbation == "full":
            return self._evaluate_full(step, worker, batch)
        ctx = self._context(batch)
        if cfg.update == "gn":
            return self._evaluate_gn(step, worker, ctx)
        probes: list[tuple[int, float]] = []
        losses: list[float] = []
        if cfg.gradient == "forward":  # δ_k = dL/dε = mean_n 2 R_n Ṙ_nk, all probes in one dual pass
            zs = [self._draw(step, worker, k, ctx) for k in range(cfg.q)]
            R, phi, u, Rd = self._residual_dual(ctx, zs)
            J_last = self._last_layer_jacobian(ctx.batch, phi, u)  # the dense output-layer part of each Z_k
            Rd = Rd + torch.stack([z["last"] for z in zs]) @ J_last.t()
            deltas = (2 * Rd * R).mean(1)
            return WorkerReport(worker, [(k, float(deltas[k])) for k in range(cfg.q)], float(R.square().mean()))
        for k in range(cfg.q):
            z = self._draw(step, worker, k, ctx)
            if cfg.crns:
                lp = self._loss(ctx, z, cfg.eps)[0]
                lm = self._loss(ctx, z, -cfg.eps)[0]
            else:  # independent spatial randomness per evaluation: the O(1/ε²) variance ablation
                lp = self._loss(ctx, z, cfg.eps, self._redraw_dirs(batch, step, worker, k, 0))[0]
                lm = self._loss(ctx, z, -cfg.eps, self._redraw_dirs(batch, step, worker, k, 1))[0]
            probes.append((k, float((lp - lm) / (2 * cfg.eps))))
            losses.append(0.5 * float(lp + lm))
        loss = sum(losses) / len(losses) if losses else float("nan")
        return WorkerReport(worker, probes, loss)

    def _redraw_dirs(self, batch: StepBatch, step: int, worker: int, k: int, sign: int) -> StepBatch:
        from .estimators import sample_directions
        from .taylor import boundary_jet

        s = self.solver
        gen = generator(derive(self.job_seed, "xi", step, worker, k, sign), self.device)
        dirs = sample_directions(
            s.estimator, self.problem.dim, s.samples, self.problem.order, gen, self.dtype, self.device
        )
        return StepBatch(
            batch.x, batch.f, dirs, boundary_jet(self.problem.boundary_poly, batch.x, dirs, self.problem.order)
        )

    def _residual_dual(self, ctx: _StepCtx, zs: list[dict], w1_U: Tensor | None = None):
        """R(θ_eff) and its exact directional derivatives along every Z_k in one batched forward pass.

        With ``w1_U`` (h × p), 2p channels come first: channel j sets ż₀ = u_j at every point (value) and
        channel p+j sets ż₁ = u_j on every jet direction; then ``Rd`` is (per-direction (2p+q, N, S), value
        (2p+q, N)) instead of (q, N), from which ``_w1_jacobian_columns`` builds the exact W₁ Jacobian.
        """
        m = self.model
        lowrank: list[LowRank | None] = []
        tangents: list[tuple[Tensor, Tensor] | None] = []
        first_tangent = None
        pad = 0
        if w1_U is not None:
            p = w1_U.shape[1]
            pad = 2 * p
            z0d = torch.zeros(pad + len(zs), 1, 1, w1_U.shape[0], dtype=self.dtype, device=self.device)
            z1d = torch.zeros_like(z0d)
            z0d[:p, 0, 0] = w1_U.t()
            z1d[p:pad, 0, 0] = w1_U.t()
            first_tangent = (z0d, z1d)
        for l, lay in enumerate(self.layers):
            if l == 0 and w1_U is not None:
                lowrank.append(None)
                tangents.append(None)
                continue
            MS = torch.stack([lay.U @ z["S"][l] for z in zs]) if zs else None  # (q, m, r)
            if MS is not None and pad:
                MS = torch.cat([MS.new_zeros(pad, *MS.shape[1:]), MS])
            if MS is None:
                MS = lay.U.new_zeros(pad, lay.U.shape[0], lay.V.shape[1])  # no hidden probes: W₁ channels only
            if lay.V is None:
                lowrank.append(LowRank(V=None, M=None, xv=ctx.data_basis.xv, dv=ctx.data_basis.dv))
                tangents.append((None, MS))
            else:
                M = lay.U @ lay.C
                lowrank.append(LowRank(lay.V, M, xv=ctx.x_v, dv=ctx.d_v) if l == 0 else LowRank(lay.V, M))
                tangents.append((lay.V, MS))
        phi, phid = hidden_jet_dual(
            ctx.first, m.W[1:-1], m.b[1:-1], self.problem.order, lowrank, tangents, first_tangent
        )
        u = u_jet(ctx.batch, phi, m.W[-1], m.b[-1])
        R = residual(self.problem, ctx.batch, u)
        return R, phi, u, residual_tangents(self.problem, ctx.batch, phi, phid, m.W[-1], u, split=w1_U is not None)

    @staticmethod
    def _w1_jacobian_columns(op: Tensor, val: Tensor, basis: DataBasis, p: int) -> Tensor:
        """∂R/∂A for W₁ += U A Vᵀ (A: p × m'), (N, p·m'), from the 2p first-layer channels of the dual pass.

        R_n depends on W₁ only through z₀(x_n) = W₁x_n + b₁ and z₁,s = W₁v_s, so with α_jn = ∂R_n/∂z₀ · u_j
        (value channel j) and β_jns = ∂R_n/∂z₁,s · u_j (direction channel j, split by direction):
        ∂R_n/∂A_j = α_jn Vᵀx_n + Σ_s β_jns Vᵀv_s — exact, for all m' basis directions from 2 channels per u_j.
        """
        alpha = op[:p].sum(-1) + val[:p]  # (p, N)
        beta = op[p : 2 * p]  # (p, N, S)
        J = alpha.unsqueeze(-1) * basis.xv.unsqueeze(0) + beta @ basis.dv  # (p, N, m')
        return J.permute(1, 0, 2).reshape(J.shape[1], -1)

    def _last_layer_jacobian(self, batch: StepBatch, phi, u) -> Tensor:
        """∂R/∂(w, b) of the output layer, (N, h+1), exact (R is affine in it up to F):
        J_nj = Â[B φ_j](x_n) + F'(u_n) B(x_n) φ_j(x_n), with φ_h ≡ 1 for the bias."""
        dirs, k = batch.dirs, self.problem.order
        feats = [
            None
            if p is None
            else torch.cat([p, torch.ones_like(p[..., :1]) if i == 0 else torch.zeros_like(p[..., :1])], -1)
            for i, p in enumerate(phi)
        ]
        bj = [c.unsqueeze(-1) if c is not None else None for c in batch.bjet]
        prod = jet_mul(bj, feats)
        op = prod[k].sum(1) * (dirs.weight * math.factorial(k))  # (N, h+1)
        Bphi = prod[0][:, 0, :]
        return op + self.problem.nonlinearity_derivative(u[0][:, 0]).unsqueeze(1) * Bphi

    def _evaluate_gn(self, step: int, worker: int, ctx: _StepCtx) -> WorkerReport:
        """Subspace Gauss–Newton (backprop-free): columns P = [∂R/∂(w,b) | J Z_1 … J Z_q] of the residual's
        Jacobian on this worker's batch (output layer exact; hidden probes by JVP or CRN two-point
        differences of the per-point residuals; with w1_probes "jacobian" one more column J₁d₁ for W₁), then the
        Levenberg–Marquardt coefficients a = −(PᵀP + λ diag(PᵀP) + μI)⁻¹ PᵀR, retried with λ ×10 while the step
        raises the batch's CRN loss (gn_backtracks). Only the scalars a_k, the h+1 output-layer ones and the p × m'
        W₁ coefficients a_W₁·d₁ leave."""
        cfg = self.cfg
        zs = [self._draw(step, worker, k, ctx) for k in range(cfg.q)]
        p, d1 = 0, None
        if self._w1_jacobian:
            U1 = self.layers[0].U
            p = U1.shape[1]
            R0, phi, u, (op, val) = self._residual_dual(ctx, zs, w1_U=U1)
            Rd = op[2 * p :].sum(-1) + val[2 * p :]
            J1 = self._w1_jacobian_columns(op, val, ctx.data_basis, p).double()
            # one LM column for W₁: its own damped minimum-norm step d₁ = −J₁ᵀ(J₁J₁ᵀ + δI)⁻¹R (the NLMS direction
            # in the data span); the joint solve then sets its length beside the output layer and hidden probes
            K = J1 @ J1.t()
            delta = cfg.gn_damping * float(torch.diagonal(K).mean()) + 1e-30
            y = torch.linalg.solve(K + delta * torch.eye(K.shape[0], dtype=K.dtype, device=K.device), R0.double())
            d1 = -(J1.t() @ y)
            cols = [self._last_layer_jacobian(ctx.batch, phi, u), (-(K @ y)).unsqueeze(1).to(Rd.dtype), Rd.t()]
        elif cfg.gradient == "forward":
            R0, phi, u, Rd = self._residual_dual(ctx, zs)
            cols = [self._last_layer_jacobian(ctx.batch, phi, u), Rd.t()]
        else:
            R0, phi, u = self._residual(ctx, None, 0.0)
            cols = [self._last_layer_jacobian(ctx.batch, phi, u)]
            for z in zs:
                jz = (self._residual(ctx, z, cfg.eps)[0] - self._residual(ctx, z, -cfg.eps)[0]) / (2 * cfg.eps)
                cols.append(jz.unsqueeze(1))
        P = torch.cat(cols, 1).double()
        R = R0.double()
        loss0 = float(R.square().mean())
        h1 = self.model.width + 1
        n1 = h1 + (1 if p else 0)
        eta = self.schedule(step)
        lam = cfg.gn_damping

        def split(a: Tensor) -> tuple[Tensor, Tensor | None, Tensor]:  # output layer, W₁ coefficients, probes
            return a[:h1].to(self.dtype), (a[h1] * d1).reshape(p, -1).to(self.dtype) if p else None, a[n1:]

        for _ in range(cfg.gn_backtracks + 1):
            parts = split(levenberg_marquardt(P, R, lam))
            if cfg.gn_backtracks == 0 or self._trial_loss(ctx, zs, *parts, eta) < loss0:
                break
            lam *= 10.0  # Levenberg–Marquardt: a step that raises the CRN loss is retried more damped
        else:
            parts = split(P.new_zeros(P.shape[1]))  # no damping gave descent: skip this batch
        last, w1, ap = parts
        probes = [(k, float(ap[k])) for k in range(cfg.q)]
        return WorkerReport(worker, probes, loss0, last=last, w1=w1)

    def _trial_loss(self, ctx: _StepCtx, zs: list[dict], last: Tensor, w1: Tensor | None, ap: Tensor, eta: float):
        """mean_n R_n² on this worker's CRN batch after its own step θ + η (Σ_k a_k Z_k + output-layer step)."""
        m = self.model
        lowrank: list[LowRank | None] = []
        for l, lay in enumerate(self.layers):
            A = sum((float(ap[k]) * eta) * z["S"][l] for k, z in enumerate(zs) if z["S"][l] is not None)
            if l == 0 and w1 is not None:
                A = A + eta * w1
            if lay.V is None:
                M = None if isinstance(A, int) else lay.U @ A
                lowrank.append(None if M is None else LowRank(None, M, xv=ctx.data_basis.xv, dv=ctx.data_basis.dv))
                continue
            M = lay.U @ (lay.C + A)
            lowrank.append(LowRank(lay.V, M, xv=ctx.x_v, dv=ctx.d_v) if l == 0 else LowRank(lay.V, M))
        dense = None
        if zs and zs[0]["hb"]:
            hb = [sum((float(ap[k]) * eta) * z["hb"][l] for k, z in enumerate(zs)) for l in range(m.depth - 1)]
            dense = [(None, d) for d in hb]
        phi = hidden_jet(ctx.first, m.W[1:-1], m.b[1:-1], self.problem.order, lowrank, dense)
        u = u_jet(ctx.batch, phi, m.W[-1] + eta * last[:-1].unsqueeze(0), m.b[-1] + eta * last[-1:])
        return float(residual(self.problem, ctx.batch, u).double().square().mean())

    def _evaluate_full(self, step: int, worker: int, batch: StepBatch) -> WorkerReport:
        """MeZO-style: every parameter perturbed densely (θ ± εZ), nothing shared across evaluations.

        The perturbed weights are formed out of place, one layer at a time, so θ itself is never touched:
        in-place ±ε round trips are not bit-exact, and replicas must stay identical.
        """
        cfg, m = self.cfg, self.model
        probes, losses = [], []
        L = m.depth
        for k in range(cfg.q):
            gen = generator(derive(self.job_seed, "pert", step, worker, k), self.device)
            Z = [torch.randn(p.shape, generator=gen, dtype=self.dtype, device=self.device) for p in m.params()]
            vals = []
            for i, e in enumerate((cfg.eps, -cfg.eps)):
                b = batch if cfg.crns else self._redraw_dirs(batch, step, worker, k, i)
                first = FirstLayer.compute(m.W[0] + e * Z[0], m.b[0] + e * Z[1], b.x, b.dirs)
                Ws = [m.W[l] + e * Z[2 * l] for l in range(1, L - 1)]
                bs = [m.b[l] + e * Z[2 * l + 1] for l in range(1, L - 1)]
                phi = hidden_jet(first, Ws, bs, self.problem.order)
                u = u_jet(b, phi, m.W[-1] + e * Z[-2], m.b[-1] + e * Z[-1])
                vals.append(residual(self.problem, b, u).square().mean())
            probes.append((k, float((vals[0] - vals[1]) / (2 * cfg.eps))))
            losses.append(0.5 * float(vals[0] + vals[1]))
        return WorkerReport(worker, probes, sum(losses) / len(losses))

    def _perturb_full(self, seed: int, scale: float) -> None:
        gen = generator(seed, self.device)
        for p in self.model.params():
            p.add_(torch.randn(p.shape, generator=gen, dtype=self.dtype, device=self.device), alpha=scale)

    # ------------------------------------------------------------------------------------------- apply
    @torch.no_grad()
    def apply(self, step: int, reports: list[WorkerReport]) -> float:
        """Apply the gathered probes of step t (identical on every worker). Returns the mean CRN loss."""
        cfg = self.cfg
        reports = sorted(reports, key=lambda r: r.worker)
        if cfg.update == "gn":
            self._apply_gn_steps(step, reports)
            if step + 1 >= self.next_refresh:
                self._draw_bases()
            return sum(r.loss for r in reports) / len(reports)
        deltas = torch.tensor([d for r in reports for _, d in r.probes], dtype=torch.float64)
        Q = len(deltas)
        ms = float(deltas.square().mean())
        if not math.isfinite(ms):
            raise FloatingPointError(f"non-finite directional derivative at step {step}")
        self.rms2 = ms if self.rms2 == 0.0 else cfg.rms_beta * self.rms2 + (1 - cfg.rms_beta) * ms
        coef = (deltas / math.sqrt(self.rms2 + 1e-30)).clamp_(-cfg.clip, cfg.clip)
        lr = self.schedule(step)
        if cfg.perturbation == "full":
            pairs = [(r.worker, k) for r in reports for k, _ in r.probes]
            for i, (w, k) in enumerate(pairs):
                self._perturb_full(derive(self.job_seed, "pert", step, w, k), -lr * float(coef[i]) / Q)
        else:
            self._apply_subspace(step, reports, coef, Q, lr)
        if cfg.perturbation == "subspace" and step + 1 >= self.next_refresh:
            self._draw_bases()
        return sum(r.loss for r in reports) / len(reports)

    def _sum_probes(
        self,
        step: int,
        reports: list[WorkerReport],
        coefs: list[float],
        w1_mult: float,
        w1_scale: float = 0.0,
        w1_target: Tensor | None = None,
    ):
        """Regenerate every probe Z_wk from its seed and return Σ c_wk S_wk per subspace layer, Σ c_wk z_last and
        Σ c_wk z_hb. The data-aligned W₁ part is folded into W₁ right away, per worker (its basis is that
        worker's batch), as W₁ += w1_mult · U (Σ_k c_wk S_wk + w1_scale · report.w1) Vᵀ_w (or into ``w1_target``)."""
        m = self.model
        G = [torch.zeros_like(lay.C) for lay in self.layers]
        g_last = torch.zeros_like(self.last_mom)
        g_hb = [torch.zeros_like(m.b[l]) for l in range(m.depth - 1)]
        aligned = self.layers[0].V is None
        i = 0
        for r in reports:
            batch = self.batches.get(step, r.worker, with_source=False) if aligned else None
            ctx = _StepCtx(batch, None, self._data_basis(batch) if aligned else None)
            A1 = self.layers[0].U.new_zeros(self.layers[0].U.shape[1], ctx.data_basis.rank) if aligned else None
            if r.w1 is not None:
                A1.add_(r.w1, alpha=w1_scale)
            for k, _ in r.probes:
                c = coefs[i]
                i += 1
                z = self._draw(step, r.worker, k, ctx)
                for l in range(len(self.layers)):
                    if z["S"][l] is not None:
                        (A1 if l == 0 and aligned else G[l]).add_(z["S"][l], alpha=c)
                g_last.add_(z["last"], alpha=c)
                for l, hb in enumerate(z["hb"]):
                    g_hb[l].add_(hb, alpha=c)
            if aligned:
                target = m.W[0] if w1_target is None else w1_target
                ctx.data_basis.fold(target, self.layers[0].U @ (w1_mult * A1), batch.x, batch.dirs)
        return G, g_last, g_hb

    def _apply_subspace(self, step: int, reports: list[WorkerReport], coef: Tensor, Q: int, lr: float) -> None:
        """Momentum SGD on G = (1/Q) Σ δ̃ S. optimizer_state "subspace": mom ← β mom + G; C ← C − η mom, in r×r
        coordinates (the aligned W₁ without momentum, folded); "full": M ← β M + U G Vᵀ; W ← W − η M with a dense
        momentum matrix per hidden layer (P extra numbers: only where memory allows)."""
        cfg, m = self.cfg, self.model
        beta = cfg.momentum
        full = cfg.optimizer_state == "full"
        if full:
            if not self.full_mom:
                self.full_mom = [torch.zeros_like(W) for W in m.W[:-1]]
            for M in self.full_mom:
                M.mul_(beta)
        G, g_last, g_hb = self._sum_probes(
            step,
            reports,
            [float(c) / Q for c in coef],
            1.0 if full else -lr,
            w1_target=self.full_mom[0] if full else None,
        )
        for l, lay in enumerate(self.layers):
            if full:
                if lay.V is not None:
                    self.full_mom[l].addmm_(lay.U @ G[l], lay.V.t())
                m.W[l].add_(self.full_mom[l], alpha=-lr)
                continue
            if lay.V is None:
                continue
            lay.mom.mul_(beta).add_(G[l])
            lay.C.add_(lay.mom, alpha=-lr)
        if cfg.perturb_hidden_bias:
            for l, g in enumerate(g_hb):
                m.b[l].add_(g, alpha=-lr)
        self.last_mom.mul_(beta).add_(g_last)  # the output layer: dense perturbations, its own rate
        step_last = self.last_mom * (-lr * cfg.lr_last_mult)
        m.W[-1].add_(step_last[:-1].unsqueeze(0))
        m.b[-1].add_(step_last[-1:])

    def _apply_gn_steps(self, step: int, reports: list[WorkerReport]) -> None:
        """θ ← θ + (η_t / n_workers) Σ_w (Σ_k a_wk Z_wk + output-layer step), identical on every replica."""
        m = self.model
        scale = self.schedule(step) / len(reports)
        coefs = torch.tensor([a for r in reports for _, a in r.probes], dtype=torch.float64)
        if not bool(torch.isfinite(coefs).all()) or not all(bool(torch.isfinite(r.last).all()) for r in reports):
            raise FloatingPointError(f"non-finite Gauss–Newton coefficients at step {step}")
        for r in reports:
            m.W[-1].add_(r.last[:-1].unsqueeze(0), alpha=scale)
            m.b[-1].add_(r.last[-1:], alpha=scale)
        G, _, g_hb = self._sum_probes(step, reports, [scale * float(a) for a in coefs], 1.0, scale)
        for lay, g in zip(self.layers, G, strict=True):
            if lay.V is not None:
                lay.C.add_(g)
        for l, g in enumerate(g_hb):
            m.b[l].add_(g)

    # ------------------------------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict[str, Tensor]:
        sd: dict[str, Tensor] = {
            "rms2": torch.tensor(self.rms2, dtype=torch.float64),
            "refresh_index": torch.tensor(self.refresh_index),
            "next_refresh": torch.tensor(self.next_refresh),
            "last_mom": self.last_mom,
        }
        for l, lay in enumerate(self.layers):
            sd[f"layer{l}.U"] = lay.U
            sd[f"layer{l}.C"] = lay.C
            sd[f"layer{l}.mom"] = lay.mom
            if lay.V is not None:
                sd[f"layer{l}.V"] = lay.V
        for l, M in enumerate(self.full_mom):
            sd[f"full_mom{l}"] = M
        return sd

    def load_state_dict(self, sd: dict[str, Tensor]) -> None:
        self.rms2 = float(sd["rms2"])
        self.refresh_index = int(sd["refresh_index"])
        self.next_refresh = int(sd["next_refresh"])
        self.last_mom = sd["last_mom"].clone()
        self.layers = []
        l = 0
        while f"layer{l}.U" in sd:
            V = sd.get(f"layer{l}.V")
            self.layers.append(
                _Layer(
                    sd[f"layer{l}.U"].clone(),
                    None if V is None else V.clone(),
                    sd[f"layer{l}.C"].clone(),
                    sd[f"layer{l}.mom"].clone(),
                )
            )
            l += 1
        self.full_mom = [sd[f"full_mom{l}"].clone() for l in range(len(self.model.W)) if f"full_mom{l}" in sd]
