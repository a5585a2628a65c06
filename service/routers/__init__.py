"""HTTP routes: jobs, artifacts and evaluation, health and metrics."""
