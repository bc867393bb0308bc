"""Replay the stored histories (tests/histories/*.json) against the current workflow code:
a non-deterministic change fails here (samples-python ``replay/``; docs/design.md#versioning)."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from ringflow.sandbox import strict_workflow_runner
from ringflow.temporal import DATA_CONVERTER
from workflows import WORKFLOWS

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))
TEXTS = {p.stem: p.read_text() for p in HISTORIES}


def test_histories_are_stored():
    assert len(HISTORIES) >= 8


@pytest.mark.parametrize("workflow_id", sorted(TEXTS))
async def test_replay(workflow_id: str):
    history = WorkflowHistory.from_json(workflow_id, TEXTS[workflow_id])
    result = await Replayer(
        workflows=WORKFLOWS, data_converter=DATA_CONVERTER, workflow_runner=strict_workflow_runner()
    ).replay_workflow(history)
    assert result.replay_failure is None
