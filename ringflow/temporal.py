"""The one place a Temporal client is made: pydantic data converter, settings' address, and
(when tracing is on) Temporal's OpenTelemetry ``TracingInterceptor``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from temporalio.client import Client, Interceptor
from temporalio.contrib.pydantic import pydantic_data_converter

from ringflow.settings import Settings

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider
    from temporalio.runtime import Runtime

DATA_CONVERTER = pydantic_data_converter
"""The data converter of every client, worker and test environment (docs/design.md, Temporal conventions)."""


async def connect(
    settings: Settings, *, runtime: Runtime | None = None, tracer_provider: TracerProvider | None = None
) -> Client:
    """Connect to ``settings.temporal_address`` / ``temporal_namespace``.

    ``runtime``: the SDK runtime (the worker's carries its Prometheus endpoint,
    ``ringflow.worker.worker_runtime``); None: the SDK's default. ``tracer_provider``
    (``ringflow.tracing.tracer_provider``; None: no tracing): the client gets Temporal's
    ``TracingInterceptor`` with a tracer of it, so that starting a workflow, signals and
    updates are spans carried to the workflow in its headers, and a worker made with this
    client traces its workflows and activities too (the SDK hands a client's interceptors
    that are also worker interceptors to its workers).

    Raises ``RuntimeError`` (from temporalio) when the server is unreachable.
    """
    interceptors: list[Interceptor] = []
    if tracer_provider is not None:
        from temporalio.contrib.opentelemetry import TracingInterceptor

        interceptors.append(TracingInterceptor(tracer_provider.get_tracer("ringflow.temporal")))
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=DATA_CONVERTER,
        interceptors=interceptors,
        runtime=runtime,
    )
