"""Prometheus metrics on a registry of the app's own (so several apps can live in one process).

Job counters are read from the store, not counted in this process: a job cancelled while queued, one finished
by a restart's reconcile, or one finished under an earlier server all count, so ``sdze_jobs_finished_total``
always equals the terminal states of ``sdze_jobs`` (jobs are never deleted, so both only grow).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from .job_store import TERMINAL


class _JobCollector(Collector):
    def __init__(self, counts: Callable[[], dict[str, int]], ready: Callable[[], bool], running: Callable[[], int]):
        self.counts, self.ready, self.running = counts, ready, running

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        g = GaugeMetricFamily("sdze_jobs", "jobs in the store by state", labels=["state"])
        fin = CounterMetricFamily("sdze_jobs_finished", "jobs finished by outcome", labels=["state"])
        sub = CounterMetricFamily("sdze_jobs_submitted", "jobs accepted")
        try:
            counts = self.counts()
        except Exception:  # a scrape must not fail because the store is briefly busy
            counts = None
        if counts is not None:
            for state, n in counts.items():
                g.add_metric([state], n)
                if state in TERMINAL:
                    fin.add_metric([state], n)
            sub.add_metric([], sum(counts.values()))
            yield sub
            yield fin
        yield g
        yield GaugeMetricFamily("sdze_dispatcher_ready", "1 when connected to Ray and dispatching", value=self.ready())
        yield GaugeMetricFamily("sdze_jobs_running_here", "jobs this server is running on Ray", value=self.running())


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "sdze_http_requests", "HTTP requests", ["method", "route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "sdze_http_request_duration_seconds",
            "HTTP request latency (to the response start)",
            ["route"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )

    def watch(
        self, counts: Callable[[], dict[str, int]], ready: Callable[[], bool], running: Callable[[], int]
    ) -> None:
        self.registry.register(_JobCollector(counts, ready, running))

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def observe(self, method: str, route: str, status: int, started: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(route).observe(time.perf_counter() - started)
