"""The SDZE zeroth-order engine, split by its verbs (docs/method.md follows one step through these modules).

perturbation       one probe's Z_k drawn from its seed; ``Offset``, a displacement in engine coordinates
perturbed_forward  the one forward at θ_eff + offset (all low-rank terms are built there)
probes_*           how a worker measures its probes: two-point, forward-mode, Gauss–Newton, dense
probe_sum          regenerate the reported probes and sum them with their coefficients
update_*           how every replica applies the reports: subspace SGD, full-state SGD, dense SGD, Gauss–Newton
report             the wire format; bases, context: engine state and a step's shared inputs; engine: the dispatcher
"""

from .engine import SDZEEngine
from .perturbation import Offset, Perturbation
from .report import WorkerReport

__all__ = ["Offset", "Perturbation", "SDZEEngine", "WorkerReport"]
