"""ringflow's Temporal worker: the call workflows and their activities, as one process.

``python -m ringflow.worker`` (or ``ringflow worker``) runs it with the settings
from ``RINGFLOW_*``; scale out by running more of them on the same task queue.
The webhook dispatcher (docs/webhooks.md) runs beside the worker, in the same
process. SIGTERM or SIGINT stops polling, lets running activities finish for up to
``graceful_shutdown_s`` seconds and exits 0.

Metrics: the SDK runtime's Prometheus endpoint on ``worker_metrics_address``
(:func:`worker_runtime`; the SDK's ``temporal_*`` metrics and the call metrics of
``workflows/metrics.py``, docs/metrics.md). Traces: with ``otlp_endpoint`` set, the
worker's client carries Temporal's ``TracingInterceptor`` (``ringflow/tracing.py``).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from ringflow.settings import Settings, settings_or_exit

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from temporalio.runtime import Runtime

log = logging.getLogger("ringflow.worker")

GRACEFUL_SHUTDOWN_S = 10.0
"""How long running activities get to finish after SIGTERM, seconds."""


_RUNTIMES: dict[str, Runtime] = {}
"""The worker runtimes made in this process, by metrics address: a runtime binds its address
for the life of the process, so a second worker in the same process (tests) shares it."""


def worker_runtime(settings: Settings) -> Runtime | None:
    """The SDK runtime of the worker's client: its Prometheus endpoint serves ``/metrics`` on
    ``settings.worker_metrics_address`` (host:port), counters named ``*_total``, durations in
    seconds named ``*_seconds``, the call histograms' buckets from ``workflows/metrics.py``.
    None (the SDK's default runtime, no endpoint) when the address is empty, or when it
    cannot be bound: that is logged as an error and the worker runs on, as calls matter more
    than their metrics."""
    address = settings.worker_metrics_address.strip()
    if not address:
        return None
    if address in _RUNTIMES:
        return _RUNTIMES[address]
    from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

    from workflows.metrics import HISTOGRAM_BUCKETS

    config = PrometheusConfig(
        bind_address=address,
        # Prometheus naming: counters end in _total, durations are seconds named *_seconds
        counters_total_suffix=True,
        unit_suffix=True,
        durations_as_seconds=True,
        histogram_bucket_overrides=HISTOGRAM_BUCKETS,
    )
    try:
        runtime = Runtime(telemetry=TelemetryConfig(metrics=config))
    except ValueError as e:  # "Failed starting Prometheus exporter: Address already in use"
        log.error("worker metrics endpoint %s unavailable, running without it: %s", address, e)
        return None
    _RUNTIMES[address] = runtime
    log.info("worker metrics on http://%s/metrics", address)
    return runtime


def _start_webhook_dispatcher(settings: Settings, pool: Any) -> tuple[Any, asyncio.Task[None] | None]:
    """The webhook dispatcher (``ringflow/webhook_dispatcher.py``, docs/webhooks.md) running in a
    task of this process, counting into the worker runtime's meter; (None, None) when
    ``webhook_dispatcher`` is off."""
    if not settings.webhook_dispatcher:
        return None, None
    from ringflow.webhook_dispatcher import Dispatcher, DispatcherConfig

    runtime = worker_runtime(settings)
    meter = runtime.metric_meter if runtime is not None else None
    dispatcher = Dispatcher(pool, DispatcherConfig.from_settings(settings), meter=meter)
    return dispatcher, asyncio.create_task(dispatcher.run(), name="webhook-dispatcher")


def _start_media_monitor(settings: Settings, pool: Any, client: Any) -> asyncio.Task[None] | None:
    """The media node monitor (``ringflow/media_monitor.py``, issue 13) running in a task of
    this process; None unless ``media_enabled`` and ``media_monitor``."""
    if not (settings.media_enabled and settings.media_monitor):
        return None
    from ringflow.media_monitor import NodeMonitor

    monitor = NodeMonitor(pool, client, settings.media_node_expiry_s, settings.media_node_heartbeat_s / 2)
    return asyncio.create_task(monitor.run(), name="media-node-monitor")


def workflow_classes() -> list[type]:
    """The workflows this worker runs: ``BuildingCallWorkflow``, and the legacy
    ``EscalationWorkflow`` / ``CallWorkflow`` for calls started before the upgrade."""
    from workflows import WORKFLOWS

    return list(WORKFLOWS)


async def run_worker(
    settings: Settings,
    stop_event: asyncio.Event | None = None,
    graceful_shutdown_s: float = GRACEFUL_SHUTDOWN_S,
    tracer_provider: TracerProvider | None = None,
) -> None:
    """Run the worker on ``settings.task_queue`` until ``stop_event`` is set.

    Without ``stop_event``, SIGTERM and SIGINT set one (the process's main loop
    only). Opens an asyncpg pool on ``settings.database_url`` and a Temporal
    client on ``settings.temporal_address`` (runtime: :func:`worker_runtime`); both
    are closed on return. ``tracer_provider``: where the workflows' and activities'
    spans go; None: ``ringflow.tracing.tracer_provider(settings, WORKER)`` (None when
    tracing is off), shut down (flushed) on return. Raises what ``create_pool`` /
    ``connect`` raise when PostgreSQL or Temporal is unreachable, and whatever makes the
    worker fail (e.g. an invalid workflow).
    """
    # Imported here so that `ringflow --help` stays fast and this module imports on its own.
    from temporalio.worker import Worker

    from activities.calls import CallActivities
    from activities.directory import DirectoryActivities
    from activities.media import MediaActivities
    from activities.snapshots import SnapshotActivities
    from ringflow import tracing
    from ringflow.sandbox import workflow_runner
    from ringflow.temporal import connect
    from store.db import create_pool

    loop = asyncio.get_running_loop()
    own_signals = stop_event is None
    stop = stop_event if stop_event is not None else asyncio.Event()
    if own_signals:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
    own_provider = tracer_provider is None
    provider = tracing.tracer_provider(settings, tracing.WORKER) if own_provider else tracer_provider
    pool = await create_pool(settings.database_url, settings.db_pool_min, settings.db_pool_max)
    media = MediaActivities(settings, pool=pool) if settings.media_enabled else None  # docs/media.md
    # issue 10 item 4: a missed call's snapshot, fetched from the room's bridge node, stored with the call
    snapshots = SnapshotActivities(pool, media) if media is not None else None
    try:
        client = await connect(settings, runtime=worker_runtime(settings), tracer_provider=provider)
        worker = Worker(
            client,
            task_queue=settings.task_queue,
            workflows=workflow_classes(),
            # ringflow's packages passed through the sandbox: ~64 KiB per cached workflow
            # instead of ~420 (ringflow/sandbox.py); the tests run the strict sandbox.
            workflow_runner=workflow_runner(),
            activities=[
                *CallActivities(pool).all(),
                *DirectoryActivities(pool).all(),
                *(media.all() if media is not None else []),
                *(snapshots.all() if snapshots is not None else []),
            ],
            graceful_shutdown_timeout=timedelta(seconds=graceful_shutdown_s),
            # After a crash the server keeps offering a call's next task to the dead worker's
            # sticky queue for this long before any worker may take it: a ring, an answer or
            # a hang-up is late by as much. The SDK's default is 10 s.
            sticky_queue_schedule_to_start_timeout=timedelta(seconds=settings.worker_sticky_timeout_s),
            # One cached workflow per ringing call (bench/RESULTS.md, capacity); an evicted
            # call replays its history on its next event (a ring timeout, an answer).
            max_cached_workflows=settings.worker_max_cached_workflows,
            # bench/RESULTS.md (ring timer): a task's local activities and its timers' start
            # wait on a worker shared by every running task.
            max_concurrent_workflow_tasks=settings.worker_max_concurrent_workflow_tasks,
        )
        running = asyncio.create_task(worker.run())
        stopping = asyncio.create_task(stop.wait())
        dispatcher, dispatching = _start_webhook_dispatcher(settings, pool)
        monitoring = _start_media_monitor(settings, pool, client)
        log.info("worker polling %s on %s", settings.task_queue, settings.temporal_address)
        # Either a stop request, or the worker failing on its own (fatal poll error).
        await asyncio.wait({running, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not running.done():
            log.info("worker stopping (graceful for up to %s s)", graceful_shutdown_s)
            await worker.shutdown()
        if dispatcher is not None and dispatching is not None:
            dispatcher.stop()
            await dispatching
        if monitoring is not None:
            monitoring.cancel()
            await asyncio.gather(monitoring, return_exceptions=True)
        await running  # re-raises a worker failure
    finally:
        await pool.close()
        if media is not None:
            await media.aclose()
        if own_provider and provider is not None:
            await asyncio.to_thread(provider.shutdown)  # flushes: may wait on the collector
        if own_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)


def main() -> None:
    """Entry point of ``python -m ringflow.worker``."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(run_worker(settings_or_exit()))  # a dev secret in production: one line, exit 1


if __name__ == "__main__":
    main()
