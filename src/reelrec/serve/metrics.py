"""Prometheus metrics of one app instance (own registry, so several apps can share a process).

Names (all prefixed `reelrec_`):
- `http_request_seconds{endpoint,method}` histogram, `http_requests_total{endpoint,method,status}`
- `feed_stage_seconds{stage}` histogram: retrieve, filter, rank, rerank, total
- `feed_candidates{stage}` histogram: retrieved, after_filter, ranked, returned
- `feed_filtered_total{reason}`: candidates removed per filter
- `feed_shed_total`: feed requests refused with 503 because they queued too long
- `events_accepted_total`, `events_rejected_total{reason}`
- `stream_append_errors_total`: event requests refused (503) because the Redis Stream append failed
- `model_version` gauge, `model_swaps_total`, `model_swap_failures_total{reason}`
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Feed latencies are in the low milliseconds: buckets from 0.5 ms to 2.5 s.
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.025, 0.035, 0.05,
    0.075, 0.1, 0.25, 0.5, 1.0, 2.5,
)  # fmt: skip
COUNT_BUCKETS = (0, 1, 5, 10, 20, 50, 100, 200, 300, 500, 750, 1000, 2000, 5000)


class ServerMetrics:
    """All metrics of one server; `registry` is what `/metrics` exposes."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.request_seconds = Histogram(
            "reelrec_http_request_seconds", "HTTP request latency by route",
            ["endpoint", "method"], buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.requests = Counter(
            "reelrec_http_requests", "HTTP requests by route and status",
            ["endpoint", "method", "status"], registry=r,
        )  # fmt: skip
        self.stage_seconds = Histogram(
            "reelrec_feed_stage_seconds", "Feed pipeline time per stage",
            ["stage"], buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.candidates = Histogram(
            "reelrec_feed_candidates", "Candidates per feed request after each stage",
            ["stage"], buckets=COUNT_BUCKETS, registry=r,
        )  # fmt: skip
        self.filtered = Counter(
            "reelrec_feed_filtered", "Candidates removed by each filter", ["reason"], registry=r
        )
        self.shed = Counter(
            "reelrec_feed_shed", "Feed requests refused (503) after waiting too long", registry=r
        )
        self.events_accepted = Counter(
            "reelrec_events_accepted", "Events appended to the event log", registry=r
        )
        self.events_rejected = Counter(
            "reelrec_events_rejected", "Events refused (dead-lettered) by reason",
            ["reason"], registry=r,
        )  # fmt: skip
        self.stream_append_errors = Counter(
            "reelrec_stream_append_errors",
            "Event requests answered 503: appending to the Redis Stream (events_stream) failed",
            registry=r,
        )
        self.model_version = Gauge(
            "reelrec_model_version", "Version of the model being served (0 = none)", registry=r
        )
        self.swaps = Counter("reelrec_model_swaps", "Model versions swapped in", registry=r)
        self.swap_failures = Counter(
            "reelrec_model_swap_failures", "Model versions refused (verification or load failed)",
            ["reason"], registry=r,
        )  # fmt: skip

    def observe_feed(
        self, timings_s: dict[str, float], counts: dict[str, int], filtered: dict[str, int]
    ) -> None:
        for stage, seconds in timings_s.items():
            self.stage_seconds.labels(stage).observe(seconds)
        for stage, n in counts.items():
            self.candidates.labels(stage).observe(n)
        for reason, n in filtered.items():
            if n:
                self.filtered.labels(reason).inc(n)
