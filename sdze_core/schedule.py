"""Learning-rate schedules shared by the ZO engine and the first-order baselines.

``lr(t) = lr0 · (1 − (1 − final_frac) · min(t / horizon, 1))`` — linear decay to ``final_frac·lr0`` over
``horizon`` steps (SPEC §3's reference: Adam 1e-3 decaying linearly to 0). With a wall-time budget the horizon
is fixed once from the measured step time (then checkpointed), so the schedule stays a pure function of the
step: resumes and replicas agree bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class LinearDecay:
    lr0: float
    horizon: int
    final_frac: float = 0.0

    def __call__(self, step: int) -> float:
        frac = min(step / max(self.horizon, 1), 1.0)
        return self.lr0 * (1.0 - (1.0 - self.final_frac) * frac)

    def state_dict(self) -> dict:
        return {"lr0": self.lr0, "horizon": self.horizon, "final_frac": self.final_frac}

    def load_state_dict(self, sd: dict) -> None:
        """Also reads checkpoints written with the former constant ``scale`` (always 1.0: nothing ever set it)."""
        if float(sd.get("scale", 1.0)) != 1.0:
            raise ValueError(f"checkpoint schedule has scale {sd['scale']}, which this version does not apply")
        self.lr0, self.horizon, self.final_frac = float(sd["lr0"]), int(sd["horizon"]), float(sd["final_frac"])
