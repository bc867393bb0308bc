"""Deterministic Temporal workflows: ``EscalationWorkflow`` (one building call) and
``CallWorkflow`` (one caller-listener call through the reference's phases)."""

from workflows.call import CallWorkflow
from workflows.escalation import EscalationWorkflow

WORKFLOWS = [EscalationWorkflow, CallWorkflow]
"""Every workflow class, for ``Worker(workflows=...)``."""

__all__ = ["WORKFLOWS", "CallWorkflow", "EscalationWorkflow"]
