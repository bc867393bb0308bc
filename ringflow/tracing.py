"""OpenTelemetry traces: one tracer provider per ringflow process, off unless an OTLP endpoint is set.

``RINGFLOW_OTLP_ENDPOINT`` (setting ``otlp_endpoint``) is the OTLP/HTTP base URL of a
collector (``http://otel-collector:4318``); spans go to ``<url>/v1/traces``, batched. Unset,
:func:`tracer_provider` returns None and nothing is traced: no provider, no Temporal
interceptor, no FastAPI instrumentation.

Each process names its spans by service (:data:`API`, :data:`WORKER`, :data:`BRIDGE`). The
provider is handed to what traces (``ringflow.temporal.connect``, ``api.app.create_app``, the
push hub) instead of being installed as OpenTelemetry's global one: no process-wide state, so
the API and a worker in one test process keep their own service names.

One call is one trace (issue 12 item 3): the API's ``POST /v1/calls`` span (FastAPI
instrumentation) -> ``StartWorkflow`` (Temporal's ``TracingInterceptor`` on the API's
client) -> ``RunWorkflow`` and ``StartActivity`` (the worker's interceptor, from the
workflow's headers) -> ``RunActivity`` -> the push delivery (``api/hub.py``), whose parent
is the W3C ``traceparent`` that :func:`current_traceparent` stored in the outbox row.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

if TYPE_CHECKING:
    from fastapi import FastAPI
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

    from ringflow.settings import Settings

API = "ringflow-api"
"""Service name of the API's spans."""
WORKER = "ringflow-worker"
"""Service name of the worker's spans (workflows and activities)."""
BRIDGE = "ringflow-bridge"
"""Service name of the media bridge's spans."""

TRACES_PATH = "/v1/traces"
"""Where an OTLP/HTTP collector takes spans, below its base URL (OTLP specification)."""

_W3C = TraceContextTextMapPropagator()


def traces_url(endpoint: str) -> str:
    """``endpoint`` (an OTLP/HTTP base URL) with :data:`TRACES_PATH`, unless it has it already."""
    base = endpoint.rstrip("/")
    return base if base.endswith(TRACES_PATH) else base + TRACES_PATH


def tracer_provider(
    settings: Settings, service: str, exporter: SpanExporter | None = None
) -> TracerProvider | None:
    """A tracer provider for ``service`` (:data:`API`, :data:`WORKER`, :data:`BRIDGE`), or None
    when tracing is off (no ``settings.otlp_endpoint`` and no ``exporter``).

    Spans go to ``settings.otlp_endpoint`` (OTLP/HTTP protobuf, batched in the background),
    or, when ``exporter`` is given, to it synchronously (tests: ``InMemorySpanExporter``).
    The caller owns the provider: ``shutdown()`` flushes it. Nothing is sent at creation."""
    if exporter is None and not settings.otlp_endpoint:
        return None
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service}))
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        assert settings.otlp_endpoint is not None
        provider.add_span_processor(
            BatchSpanProcessor(OTLPSpanExporter(endpoint=traces_url(settings.otlp_endpoint)))
        )
    return provider


UNTRACED_URLS = "/metrics$,/healthz$,/readyz$,/v1/push"
"""Requests without a span (the instrumentation's comma-separated regular expressions): scrapes
and probes (noise), and the push WebSocket, whose connection lasts for hours (each delivery
is a span of its call's trace instead)."""


def instrument_fastapi(app: FastAPI, provider: TracerProvider) -> None:
    """A server span per HTTP request of ``app`` (OpenTelemetry's FastAPI instrumentation),
    named by route template, with ``provider``'s tracer; W3C ``traceparent`` headers of the
    caller are honoured. :data:`UNTRACED_URLS` are left out."""
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=provider,
        excluded_urls=UNTRACED_URLS,
        exclude_spans=["receive", "send"],
    )


def current_traceparent() -> str | None:
    """The W3C ``traceparent`` of the current span (``"00-<trace id>-<span id>-<flags>"``), or
    None when there is none (tracing off, or no span in this context)."""
    carrier: dict[str, str] = {}
    _W3C.inject(carrier)
    return carrier.get("traceparent")


def context_of(traceparent: str | None) -> Context | None:
    """The OpenTelemetry context whose remote parent is ``traceparent`` (None: no parent)."""
    if not traceparent:
        return None
    return _W3C.extract({"traceparent": traceparent})
