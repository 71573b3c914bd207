"""``GET /metrics``: the server's health for monitoring, in the Prometheus text format.

Requests and errors by route and status, the answer latency histogram, answers by outcome and the
abstention ratio, the served index (generation, documents, sentences), document changes (uploads,
deletions, the watched folder's syncs) and feedback verdicts. One registry per app, so two apps in
one process (tests) count apart; with ``--workers N`` each worker process counts its own requests.
Needs a ``read`` key when the server has keys (web/auth.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.routing import Match

from qa.types import Answer

router = APIRouter()
# Seconds; an answer takes tens of milliseconds on a quiet machine, seconds when it is overloaded.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class IndexCollector(Collector):
    """What is read at each scrape: the served index and the changes the holder applied."""

    def __init__(self, holder: Any) -> None:
        self.holder = holder

    def collect(self) -> Iterator[Any]:
        eng = self.holder.engine
        info = GaugeMetricFamily("citeqa_index_generation", "the index generation being served (1; see the label)",
                                 labels=["generation"])
        if eng is not None:
            info.add_metric([eng.index.gen_dir.name], 1.0)
        yield info
        yield GaugeMetricFamily("citeqa_index_loaded", "1 when an index is loaded", value=1.0 if eng else 0.0)
        yield GaugeMetricFamily("citeqa_documents", "documents in the served index",
                                value=len(eng.index.docs) if eng else 0)
        yield GaugeMetricFamily("citeqa_sentences", "answerable sentences in the served index",
                                value=eng.index.n_sentences() if eng else 0)
        changes = CounterMetricFamily("citeqa_document_changes", "documents changed while serving, by source "
                                      "(api: uploads and deletions; watch: the watched folder) and action",
                                      labels=["source", "action"])
        for (source, action), n in sorted(self.holder.changes.items()):
            changes.add_metric([source, action], n)
        yield changes


class Metrics:
    def __init__(self, holder: Any) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("citeqa_http_requests", "HTTP requests by route, method and status",
                                ["route", "method", "status"], registry=self.registry)
        self.errors = Counter("citeqa_http_errors", "HTTP responses with a 4xx or 5xx status, by route and status",
                              ["route", "method", "status"], registry=self.registry)
        self.latency = Histogram("citeqa_answer_latency_seconds", "time to answer a question (the engine's part)",
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.answers = Counter("citeqa_answers", "questions answered, by outcome (answered or abstained)",
                               ["outcome"], registry=self.registry)
        self.feedback = Counter("citeqa_feedback", "feedback verdicts recorded, by verdict", ["verdict"],
                                registry=self.registry)
        self.registry.register(_AbstentionRatio(self.answers))
        self.registry.register(IndexCollector(holder))
        self.routes: list[Any] = []

    def know_routes(self, routers: Iterable[APIRouter]) -> None:
        """The routes requests are counted under (a refused request never reaches its route)."""
        self.routes = [r for router in routers for r in router.routes]

    def route_of(self, scope: dict[str, Any]) -> str:
        """The path template of the route that served, or would have served, ``scope`` ("other": none)."""
        if scope["path"].startswith("/static/"):
            return "/static"
        for r in self.routes:
            match, _ = r.matches(scope)
            if match == Match.FULL:
                return str(getattr(r, "path_format", None) or getattr(r, "path", "other"))
        return "other"

    def answer(self, ans: Answer) -> None:
        self.answers.labels("abstained" if ans.abstained else "answered").inc()
        if ans.latency_ms is not None:
            self.latency.observe(ans.latency_ms / 1000.0)

    def response(self, route: str, method: str, status: int) -> None:
        self.requests.labels(route, method, str(status)).inc()
        if status >= 400:
            self.errors.labels(route, method, str(status)).inc()


class _AbstentionRatio(Collector):
    def __init__(self, answers: Counter) -> None:
        self.answers = answers

    def collect(self) -> Iterator[Any]:
        counts = {s.labels["outcome"]: s.value for m in self.answers.collect() for s in m.samples
                  if s.name.endswith("_total")}
        total = sum(counts.values())
        yield GaugeMetricFamily("citeqa_abstention_ratio", "abstained answers / all answers since start (0 before any)",
                                value=counts.get("abstained", 0.0) / total if total else 0.0)


class CountResponses:
    """ASGI middleware: count every response by its route's path template (bounded label values)."""

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def sending(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            self.metrics.response(self.metrics.route_of(scope), scope["method"], status)


def metrics_of(request: Request) -> Metrics:
    m: Metrics = request.app.state.metrics
    return m


@router.get("/metrics", response_class=Response, tags=["api"], summary="The server's health in the Prometheus text format",
            responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                             "description": "Prometheus text exposition format 0.0.4"}})
def metrics(request: Request) -> Response:
    # The 0.0.4 text format: what every Prometheus (and its parser here) reads.
    return Response(generate_latest(metrics_of(request).registry), headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4})
