"""The call core before issue 8: a parent ``EscalationWorkflow`` per building call and one
child ``CallWorkflow`` per attempt, messages forwarded between them.

Kept, unchanged in behaviour, only so that calls started by the old shape finish after an
upgrade (their histories must replay on this code: ``tests/test_replay.py``,
``tests/test_upgrade.py``). New calls start ``BuildingCallWorkflow``. Remove this package
once no ``EscalationWorkflow`` runs in any deployment (Temporal UI:
``WorkflowType="EscalationWorkflow" AND ExecutionStatus="Running"`` is empty); no new code
may import it.
"""
