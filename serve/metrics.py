"""Prometheus metrics of one app instance (its own registry, so tests and apps don't mix)."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from qa_engine.findings import Finding

KNOWN_ROUTES = {"/v1/check", "/v1/sent", "/v1/audit/ignored", "/healthz", "/readyz", "/metrics", "/"}
_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


class ServiceMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("qa_requests_total", "HTTP requests", ["route", "status"], registry=self.registry)
        self.latency = Histogram("qa_request_latency_seconds", "HTTP request latency", ["route"],
                                 buckets=_BUCKETS, registry=self.registry)
        self.warnings_by_rule = Counter("qa_warnings_total", "Warnings returned, by rule", ["rule_id"],
                                        registry=self.registry)
        self.sessions = Gauge("qa_live_sessions", "Open WebSocket sessions", registry=self.registry)
        self.reloads = Counter("qa_rule_reloads_total", "Rule pack reloads", ["outcome"], registry=self.registry)
        self._series: dict[tuple[str, int], tuple[Counter, Histogram]] = {}

    def observe(self, route: str, status: int, seconds: float) -> None:
        route = route if route in KNOWN_ROUTES else "other"  # bounded label values
        series = self._series.get((route, status))
        if series is None:  # looked up once per route and status: ``labels`` takes a lock and builds a key
            series = self._series[route, status] = (self.requests.labels(route=route, status=str(status)),
                                                    self.latency.labels(route=route))
        series[0].inc()
        series[1].observe(seconds)

    def warnings(self, findings: list[Finding]) -> None:
        for finding in findings:
            self.warnings_by_rule.labels(rule_id=finding.rule_id).inc()

    def exposition(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
