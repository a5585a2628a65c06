"""SDZE core: pure-torch, backprop-free PINN training for very high-dimensional PDEs.

Knows nothing of Ray or HTTP. Entry points: ``spec.JobSpec`` (validated job spec), ``trainer.Trainer``
(the loop), ``solver.Solver`` (one replica's step API), ``sdze.SDZEEngine`` (evaluate / apply).
"""
