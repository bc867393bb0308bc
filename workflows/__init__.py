"""Deterministic Temporal workflows: ``BuildingCallWorkflow`` (one building call, every
attempt a room inside it), and the legacy pair (``workflows.legacy``) kept registered so
that calls started before the upgrade finish."""

from workflows.building_call import BuildingCallWorkflow
from workflows.legacy.call import CallWorkflow
from workflows.legacy.escalation import EscalationWorkflow

WORKFLOWS = [BuildingCallWorkflow, EscalationWorkflow, CallWorkflow]
"""Every workflow class, for ``Worker(workflows=...)`` and the ``Replayer``."""

__all__ = ["WORKFLOWS", "BuildingCallWorkflow", "CallWorkflow", "EscalationWorkflow"]
