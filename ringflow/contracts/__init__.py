"""Shared pydantic contracts: requests, events, error codes, policies, workflow messages.

Imported by ``api``, ``workflows``, ``activities`` and ``store``; imports none of
them. Models used inside workflows never read the clock or random sources in
defaults or validators (Temporal determinism); every field added later gets a
default so stored histories stay replayable.
"""
