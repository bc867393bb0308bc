"""``ringflow simulate`` (issue 10 item 5): dry-run a unit's policy over simulated time.

A program on top, like the worker: it runs the REAL ``BuildingCallWorkflow`` on the Java
time-skipping test server with in-memory activities whose decisions are production's own
(``activities/directory.py`` ``resolve_with`` / ``precall_with``, ``activities/calls.py``
``ring_with`` / ``start_call_with`` / ``replan_with``) over a building file and a scenario.

- :mod:`ringflow.simulation.scenario`: the scenario file (contract, reading, checks against
  the building);
- :mod:`ringflow.simulation.memory`: the in-memory directory and call store, the activities;
- :mod:`ringflow.simulation.runner`: the time-skipping server, the worker and the driver that
  plays the scenario's reactions and edits at their exact simulated instants;
- :mod:`ringflow.simulation.report`: the timeline as ``ringflow calls show`` prints it, or JSON;
- :mod:`ringflow.simulation.lint`: ``ringflow simulate --check``, a week of a building's
  availability rules evaluated with the pure rules (``ringflow/availability.py``).

Contracts and production code never import this package.
"""
