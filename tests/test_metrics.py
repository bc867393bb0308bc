"""Prometheus metrics of the three processes (issue 12 item 2), scraped and parsed with
``prometheus_client.parser`` as Prometheus would:

- the API and the worker after real calls (the committed ``BuildingCallWorkflow`` and
  activities on the dev server, real PostgreSQL): one answered, one missed and one aborted
  call (nobody could be rung), an idempotent replay and a rejected request; every counter
  moved by exactly its amount, the histograms have their observations, the push backlog is
  the outbox's unacknowledged rows;
- the media bridge with two real aiortc peers talking through its control API;
- ``docs/metrics.md`` (the contract the dashboard and alert rules use) names exactly the
  ``ringflow_*`` metrics each process exposes, with their types and labels, and the SDK's
  ``temporal_*`` metrics it lists are there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio
from asgi_lifespan import LifespanManager
from prometheus_client.parser import text_string_to_metric_families
from temporalio.testing import WorkflowEnvironment

from api import tokens
from api.app import create_app
from media.models import Role
from media.peer import ClientPeer, ToneTrack
from media.server import create_bridge_app
from ringflow.contracts.common import Party, PartyKind
from ringflow.settings import Settings
from ringflow.stack.ports import free_port
from ringflow.webhook_receiver import Receiver
from store import outbox
from tests.fakes import until
from tests.media_helpers import Recorder, door_camera, serve

DOC = Path(__file__).resolve().parent.parent / "docs" / "metrics.md"
LOBBY = {"kind": "device", "id": "LOBBY-1"}
ALICE = Party(kind=PartyKind.USER, id="alice")
BOB = Party(kind=PartyKind.USER, id="bob")
MALLORY = Party(kind=PartyKind.USER, id="mallory")
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count", "_created")


# ---------------------------------------------------------------- parsing


@dataclass
class Scrape:
    """One scrape: metric families by the name as scraped (a counter's samples' name, a
    histogram's base name), see :func:`scrape_names`."""

    families: dict[str, Any]

    def value(self, name: str, **labels: str) -> float:
        """Sum of the samples called ``name`` whose labels include ``labels`` (0 when none)."""
        total = 0.0
        for family in self.families.values():
            for s in family.samples:
                if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                    total += s.value
        return total

    def labels(self, name: str) -> set[str]:
        """Every label name on the samples of the metric scraped as ``name``."""
        family = self.families[name]
        return {k for s in family.samples for k in s.labels if k != "le"}

    def names(self, prefix: str) -> set[str]:
        return {n for n in self.families if n.startswith(prefix)}


def parse(text: str) -> Scrape:
    families = {}
    for family in text_string_to_metric_families(text):
        families[scraped_name(family)] = family
    return Scrape(families)


def scraped_name(family: Any) -> str:
    """The name a metric is scraped as: a histogram's base name, else its samples' name (a
    counter's ``_total`` included, whether the exporter added it or the name has it)."""
    if family.type in ("histogram", "summary"):
        return str(family.name)
    names = {s.name for s in family.samples if not s.name.endswith("_created")}
    return names.pop() if len(names) == 1 else str(family.name)


@dataclass(frozen=True)
class Documented:
    name: str
    type: str
    labels: frozenset[str]
    process: str


def documented() -> dict[str, Documented]:
    """docs/metrics.md's tables: ``| `name` | type | `label`, ... | process | meaning |``."""
    rows: dict[str, Documented] = {}
    for line in DOC.read_text().splitlines():
        m = re.match(r"^\|\s*`([a-z_:]+)`\s*\|\s*(\w+)\s*\|([^|]*)\|\s*(\w+)\s*\|", line)
        if m:
            name, kind, labels, process = m.groups()
            rows[name] = Documented(name, kind, frozenset(re.findall(r"`(\w+)`", labels)), process)
    return rows


def check_documented(scrape: Scrape, process: str) -> None:
    """Every documented metric of ``process`` is exposed with its type and labels, and every
    ``ringflow_*`` metric exposed is documented for ``process``."""
    docs = {d.name: d for d in documented().values() if d.process == process}
    assert docs, f"docs/metrics.md lists nothing for {process}"
    missing = {n for n in docs if n not in scrape.families}
    assert not missing, f"documented for {process} but not exposed: {sorted(missing)}"
    undocumented = scrape.names("ringflow_") - set(docs)
    assert not undocumented, f"exposed by {process} but not in docs/metrics.md: {sorted(undocumented)}"
    for name, doc in docs.items():
        family = scrape.families[name]
        assert family.type == doc.type, (name, family.type, doc.type)
        assert doc.labels <= scrape.labels(name), (name, doc.labels, scrape.labels(name))


# ---------------------------------------------------------------- API + worker


@pytest_asyncio.fixture
async def stack(
    db_dsn: str, db_pool: asyncpg.Pool, dev_env: WorkflowEnvironment, task_queue: str
) -> AsyncIterator[tuple[httpx.AsyncClient, Settings]]:
    """The API (in-process ASGI) and a real worker with its metrics endpoint on a free port."""
    from ringflow.worker import run_worker

    future = datetime.now(UTC) + timedelta(days=1)
    await db_pool.execute(
        f"""
        INSERT INTO devices (sn, name, voip_token_expires_at) VALUES ('LOBBY-1', 'Lobby door', '{future}');
        INSERT INTO users (id, name) VALUES ('alice', 'Alice'), ('bob', 'Bob'), ('mallory', 'Mallory');
        INSERT INTO authorizations (user_id, target_kind, target_id) VALUES
            ('alice', 'device', 'LOBBY-1'), ('bob', 'device', 'LOBBY-1');
        """
    )
    settings = Settings(
        database_url=db_dsn,
        temporal_address=dev_env.client.service_client.config.target_host,
        task_queue=task_queue,
        worker_metrics_address=f"127.0.0.1:{free_port()}",
    )
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(settings, stop_event=stop))
    app = create_app(settings)
    try:
        async with LifespanManager(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://ringflow", headers={"X-API-Key": settings.api_key}
            ) as client:
                yield client, settings
    finally:
        stop.set()
        await asyncio.wait_for(worker, 30)


def bearer(settings: Settings, party: Party) -> dict[str, str]:
    token, _ = tokens.issue(party, settings.token_secret, 3600)
    return {"Authorization": f"Bearer {token}"}


async def place(api: httpx.AsyncClient, callee: Party, ring_timeout_s: float, key: str) -> httpx.Response:
    body = {
        "caller": LOBBY,
        "callees": [callee.model_dump(mode="json")],
        "room_type": "voice",
        "policy": {"strategy": "sequential", "ring_timeout_s": ring_timeout_s},
    }
    return await api.post("/v1/calls", json=body, headers={"Idempotency-Key": key})


async def ended(api: httpx.AsyncClient, call_id: str, timeout: float = 30.0) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        view = (await api.get(f"/v1/calls/{call_id}")).json()
        if view.get("phase") == "ended" and any(e["name"] == "callEnded" for e in view["events"]):
            return dict(view)
        assert loop.time() < deadline, view
        await asyncio.sleep(0.1)


async def scrape_worker(settings: Settings) -> Scrape:
    async with httpx.AsyncClient(timeout=5.0) as http:
        r = await http.get(f"http://{settings.worker_metrics_address}/metrics")
    assert r.status_code == 200, r.text
    return parse(r.text)


async def test_api_and_worker_metrics_after_calls(
    stack: tuple[httpx.AsyncClient, Settings], db_pool: asyncpg.Pool
) -> None:
    api, settings = stack
    # a backend's webhook receives every call's events (the worker's dispatcher delivers them)
    receiver = await Receiver().start()
    hook = await api.post("/v1/webhooks", json={"url": receiver.url})
    assert hook.status_code == 201, hook.text
    receiver.secret = hook.json()["secret"]
    # one answered call: alice answers, talks, hangs up
    answered_id = f"m-{uuid.uuid4().hex[:10]}"
    r = await place(api, ALICE, 30, answered_id)
    assert r.status_code == 201, r.text
    for _ in range(300):
        a = await api.post(f"/v1/calls/{answered_id}/answer", headers=bearer(settings, ALICE))
        if a.status_code == 200:
            break
        await asyncio.sleep(0.05)
    assert a.status_code == 200, a.text
    h = await api.post(f"/v1/calls/{answered_id}/hang-up", headers=bearer(settings, ALICE))
    assert h.status_code == 200, h.text
    assert (await ended(api, answered_id))["end_reason"] == "hangUpVoip"
    # one missed call: bob does not answer in 1 s
    missed_id = f"m-{uuid.uuid4().hex[:10]}"
    assert (await place(api, BOB, 1, missed_id)).status_code == 201
    assert (await ended(api, missed_id))["end_reason"] == "timeout"
    # one aborted call: mallory never authorized the door, so nobody can be rung (initiateFailed)
    aborted_id = f"m-{uuid.uuid4().hex[:10]}"
    assert (await place(api, MALLORY, 1, aborted_id)).status_code == 201
    assert (await ended(api, aborted_id))["end_reason"] == "initiateFailed"
    # the same press again (replayed), an unknown caller (rejected)
    assert (await place(api, BOB, 1, missed_id)).status_code == 200
    unknown = {"caller": {"kind": "device", "id": "NOPE"}, "callees": [ALICE.model_dump(mode="json")]}
    assert (await api.post("/v1/calls", json=unknown, headers={"Idempotency-Key": "m-x"})).status_code == 404

    # created, ringing, answered, ended; created, ringing, missed, ended; created, missed, ended
    try:
        await receiver.wait_for(lambda r: len(r.unique()) == 11, timeout=30)
    finally:
        await receiver.stop()
    assert all(r.verified for r in receiver.received)

    # ---- the API
    r = await api.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    m = parse(r.text)
    posts = {"method": "POST", "route": "/v1/calls"}
    assert m.value("ringflow_http_requests_total", **posts, status="201") == 3
    assert m.value("ringflow_http_requests_total", **posts, status="200") == 1
    assert m.value("ringflow_http_requests_total", **posts, status="404") == 1
    assert m.value("ringflow_http_request_duration_seconds_count", **posts) == 5
    views = m.value("ringflow_http_requests_total", method="GET", route="/v1/calls/{call_id}", status="200")
    assert views >= 2
    routes = {s.labels["route"] for s in m.families["ringflow_http_requests_total"].samples}
    assert not any(answered_id in route or missed_id in route for route in routes), routes  # templates only
    assert m.value("ringflow_call_requests_total", result="created") == 3
    assert m.value("ringflow_call_requests_total", result="replayed") == 1
    assert m.value("ringflow_call_requests_total", result="rejected") == 1
    assert m.value("ringflow_call_requests_total", result="overloaded") == 0
    # nobody is connected: every push is unacknowledged
    unacked = await db_pool.fetchval("SELECT count(*) FROM outbox WHERE acked_at IS NULL")
    assert unacked >= 6  # incoming_call, call_answered, talk_started x2, call_ended ... per call
    assert m.value("ringflow_push_backlog") == unacked
    assert m.value("ringflow_push_oldest_unacked_seconds") > 0
    for _ in range(50):  # the last delivery's settlement commits just after its answer
        if m.value("ringflow_webhook_backlog") == 0:
            break
        await asyncio.sleep(0.1)
        m = parse((await api.get("/metrics")).text)
    assert m.value("ringflow_webhook_backlog") == 0
    assert "/metrics" not in (await api.get("/openapi.json")).json()["paths"]
    check_documented(m, "api")
    # alice acknowledges hers: the backlog shrinks by as many
    ids = [r["id"] for r in await db_pool.fetch("SELECT id FROM outbox WHERE recipient = 'user:alice'")]
    assert await outbox.ack(db_pool, ALICE.key(), ids) == len(ids) > 0
    m = parse((await api.get("/metrics")).text)
    assert m.value("ringflow_push_backlog") == unacked - len(ids)

    # ---- the worker (the SDK runtime's endpoint): exactly one of each, for this task queue
    q = {"task_queue": settings.task_queue}
    expected = {
        "ringflow_calls_started_total": 3,
        "ringflow_calls_answered_total": 1,
        "ringflow_calls_missed_total": 1,
        "ringflow_calls_aborted_total": 1,
        "ringflow_call_setup_seconds_count": 2,
        "ringflow_ring_to_answer_seconds_count": 1,
    }
    delivered = {"result": "delivered"}

    async def settled() -> Scrape:
        for _ in range(100):
            w = await scrape_worker(settings)
            if all(w.value(n, **q) == v for n, v in expected.items()):
                return w
            await asyncio.sleep(0.1)
        return w

    w = await settled()
    for name, value in expected.items():
        assert w.value(name, **q) == value, (name, w.value(name, **q))
    assert w.value("ringflow_calls_ended_total", **q, end_reason="hangUpVoip") == 1
    assert w.value("ringflow_calls_ended_total", **q, end_reason="timeout") == 1
    assert w.value("ringflow_calls_ended_total", **q, end_reason="initiateFailed") == 1
    assert w.value("ringflow_calls_ended_total", **q) == 3
    assert w.value("ringflow_call_setup_seconds_sum", **q) > 0
    assert w.value("ringflow_ring_to_answer_seconds_sum", **q) > 0
    # the SDK's own metrics, durations in seconds
    assert w.value("temporal_workflow_task_schedule_to_start_latency_seconds_count", **q) > 0
    assert w.value("ringflow_webhook_deliveries_total", **delivered) == len(receiver.received) == 11
    check_documented(w, "worker")


# ---------------------------------------------------------------- media bridge


async def test_bridge_metrics_with_two_peers(tmp_path: Path) -> None:
    port = free_port()
    settings = Settings(
        media_port=port, media_url=f"http://127.0.0.1:{port}", media_recordings_dir=tmp_path / "rec"
    )
    app = create_bridge_app(settings, reporter=Recorder())
    door, carol = ClientPeer([ToneTrack(440), door_camera()]), ClientPeer([ToneTrack(880)])
    async with (
        contextlib.asynccontextmanager(serve)(app, port),
        httpx.AsyncClient(base_url=settings.media_url, headers={"X-API-Key": settings.api_key}) as http,
    ):

        async def metrics() -> Scrape:
            r = await http.get("/metrics")
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
            return parse(r.text)

        async def join(peer: ClientPeer, party: Party, role: Role) -> None:
            body = {"party": party.model_dump(mode="json"), "role": role.value, "sdp": await peer.offer()}
            r = await http.post("/rooms/call-m/peers", json=body)
            assert r.status_code == 200, r.text
            await peer.accept(r.json()["sdp"])

        try:
            empty = await metrics()
            assert empty.value("ringflow_media_rooms") == 0 and empty.value("ringflow_media_peers") == 0
            await join(door, Party(kind=PartyKind.DEVICE, id="LOBBY-1"), Role.CALLER)
            await join(carol, Party(kind=PartyKind.USER, id="carol"), Role.LISTENER)
            r = await http.put("/rooms/call-m/talker", json={"party": {"kind": "user", "id": "carol"}})
            assert r.status_code == 200, r.text
            await until(lambda: door.heard() >= 25 and carol.heard() >= 25, timeout=20)
            # RTCP sender/receiver reports come every 0.5-1.5 s: wait for bytes both ways and an RTT
            for _ in range(100):
                m = await metrics()
                if (
                    m.value("ringflow_media_bytes_total", direction="in") > 0
                    and m.value("ringflow_media_bytes_total", direction="out") > 0
                    and m.value("ringflow_media_rtt_seconds") > 0
                ):
                    break
                await asyncio.sleep(0.2)
            assert m.value("ringflow_media_rooms") == 1
            assert m.value("ringflow_media_peers") == 2
            assert m.value("ringflow_media_bytes_total", direction="in") > 0
            assert m.value("ringflow_media_bytes_total", direction="out") > 0
            assert 0 < m.value("ringflow_media_rtt_seconds") < 1  # loopback
            assert 0 <= m.value("ringflow_media_jitter_seconds") < 1
            assert m.value("ringflow_media_packets_lost_total") >= 0
            await asyncio.sleep(0.5)
            m2 = await metrics()
            assert m2.value("ringflow_media_bitrate_bits_per_second", direction="out") > 0
            check_documented(m2, "bridge")
            # the room closes: no room, no peer, and the byte counters do not go back
            before = m2.value("ringflow_media_bytes_total", direction="out")
            assert (await http.delete("/rooms/call-m")).status_code == 200
            closed = await metrics()
            assert closed.value("ringflow_media_rooms") == 0 and closed.value("ringflow_media_peers") == 0
            assert closed.value("ringflow_media_bytes_total", direction="out") >= before
        finally:
            await door.close()
            await carol.close()


def test_docs_table_is_the_contract() -> None:
    """docs/metrics.md lists each name once, with a known type and process, the webhook
    metrics of issue 9 among them."""
    docs = documented()
    assert docs
    assert {d.process for d in docs.values()} == {"api", "worker", "bridge"}
    assert {d.type for d in docs.values()} <= {"counter", "gauge", "histogram"}
    assert docs["ringflow_webhook_backlog"].process == "api"
    assert docs["ringflow_webhook_deliveries_total"].labels == {"result"}


def test_worker_runtime_shared_in_a_process_and_never_fatal(caplog: pytest.LogCaptureFixture) -> None:
    """One runtime per metrics address and process (a second worker in the same process
    shares it); an address that cannot be bound is logged and the worker runs without it;
    an empty address means none."""
    from ringflow.worker import worker_runtime

    address = f"127.0.0.1:{free_port()}"
    first = worker_runtime(Settings(worker_metrics_address=address))
    assert first is not None and worker_runtime(Settings(worker_metrics_address=address)) is first
    assert worker_runtime(Settings(worker_metrics_address="")) is None
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = f"127.0.0.1:{taken.getsockname()[1]}"
        with caplog.at_level(logging.ERROR, logger="ringflow.worker"):
            assert worker_runtime(Settings(worker_metrics_address=busy)) is None
    assert any("unavailable" in r.getMessage() for r in caplog.records)


async def test_push_backlog_is_nan_when_the_database_does_not_answer() -> None:
    """A scrape still answers when PostgreSQL is down: the backlog gauges say NaN, not a
    stale number (an alert on them then neither fires nor clears on old data)."""
    import math

    from api.metrics import ApiMetrics

    class DownPool:
        def acquire(self) -> Any:
            raise OSError("connection refused")

    metrics = ApiMetrics()
    await metrics.refresh_backlog(DownPool())  # type: ignore[arg-type]
    m = parse(metrics.exposition().decode())
    assert math.isnan(m.value("ringflow_push_backlog"))
    assert math.isnan(m.value("ringflow_push_oldest_unacked_seconds"))
