"""Learning-rate schedules shared by the ZO engine and the first-order baselines.

``lr(t) = lr0 · scale · (1 − (1 − final_frac) · min(t / horizon, 1))`` — linear decay to
``final_frac·lr0`` over ``horizon`` steps (SPEC §3's reference: Adam 1e-3 decaying linearly to 0).
With a wall-time budget the horizon is fixed once from the measured step time (then checkpointed), so
the schedule stays a pure function of the step: resumes and replicas agree bit for bit.
``scale`` is a constant multiplier kept with the schedule in checkpoints (no plateau logic changes it yet).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class LinearDecay:
    lr0: float
    horizon: int
    final_frac: float = 0.0
    scale: float = 1.0

    def __call__(self, step: int) -> float:
        frac = min(step / max(self.horizon, 1), 1.0)
        return self.lr0 * self.scale * (1.0 - (1.0 - self.final_frac) * frac)

    def state_dict(self) -> dict:
        return {"lr0": self.lr0, "horizon": self.horizon, "final_frac": self.final_frac, "scale": self.scale}

    def load_state_dict(self, sd: dict) -> None:
        self.lr0, self.horizon = float(sd["lr0"]), int(sd["horizon"])
        self.final_frac, self.scale = float(sd["final_frac"]), float(sd["scale"])
