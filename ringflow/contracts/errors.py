"""Error codes (errCode) and problem types.

Codes below 1000 are the reference's own (troubleshooting guide section 1):
9 = the listener has not authorized the device or its device group,
13 = the caller's VoIP token is invalid or expired. Codes 1000 and up are
ringflow's; ``docs/errcodes.md`` is the table, keep it in step with this enum.
"""

from __future__ import annotations

from enum import IntEnum


class ErrCode(IntEnum):
    """errCode values; the reference's where it has one."""

    OK = 0
    DEVICE_NOT_AUTHORIZED = 9  # reference 1(1): user has not authorized the device (or its group)
    VOIP_TOKEN_INVALID = 13  # reference 1(2): caller's VoIP token missing or expired
    QUOTA_EXCEEDED = 1001  # reference 1: no licence/traffic margin left for the device
    LISTENER_BUSY = 1002  # reference 4: listener in another call
    DO_NOT_DISTURB = 1003  # listener set do-not-disturb
    NO_TARGETS = 1004  # the unit has nobody who may be called from this device
    ANSWERED_BY_ANOTHER = 1005  # ring-all: someone else answered first
    CALL_NOT_ACTIVE = 1006  # the action does not fit the call's phase (already ended, not ringing you)
    NOT_A_PARTY = 1007  # the token's party is not in this call
    UNKNOWN_RESOURCE = 1008  # device, unit, user, group or call not found
    IDEMPOTENCY_CONFLICT = 1009  # Idempotency-Key reused with another request body
    VALIDATION = 1010  # malformed request
    UNAUTHENTICATED = 1011  # missing/wrong API key or party token
    OVERLOADED = 1012  # admission control: retry later
    PAYLOAD_TOO_LARGE = 1013
    UNKNOWN_ACTION = 1014  # the calling device does not offer this in-call action
    ACTION_SETTLED = 1015  # the in-call action was already acknowledged or timed out
    FORBIDDEN = 1016  # the API key lacks a scope the route needs (issue 9)
    LISTENER_AWAY = 1017  # the listener set their presence to away (issue 10); escalation skips them


PROBLEM_BASE = "/problems/"
"""Prefix of every problem ``type`` (RFC 9457 section 3.1.1): an absolute-path URI reference,
resolved against the response's URL, so ``/problems/<slug>`` on the API that answered serves
the slug's section of ``docs/errcodes.md`` (``api/docs.py``). Stable whatever the host."""

LEGACY_PROBLEM_BASE = "urn:ringflow:problem:"
"""The prefix of problem types before ``/problems/`` (read back by :func:`problem_slug`)."""

PROBLEM_SLUGS: frozenset[str] = frozenset(
    {
        # any route
        "validation",
        "unauthenticated",
        "forbidden",
        "not-found",
        "method-not-allowed",
        "payload-too-large",
        "http",
        "internal",
        "not-ready",
        # calls (api/routers/calls.py, the workflows' rejections)
        "voip-token-invalid",
        "not-a-party",
        "idempotency-conflict",
        "overloaded",
        "answered-by-another",
        "call-not-active",
        "unknown-action",
        "action-settled",
        "follow-up-closed",
        "follow-up-not-allowed",
        "action-rejected",
        "unavailable",
        # media signaling (api/routers/media.py, media/server.py)
        "invalid-sdp",
        "media",
        "media-unavailable",
        "temporal-unavailable",
        "recording-unavailable",
        # directory (api/routers/directory.py, store/directory.py)
        "unknown-reference",
        "conflict",
        "device-exists",
        "group-exists",
        "user-exists",
        "unit-exists",
        "device-in-another-group",
        "user-in-use",
        # tenants and API keys (api/routers/tenants.py, issue 9)
        "tenant-exists",
    }
)
"""Every problem slug the API and the media bridge can answer with; each has its section
``### <slug>`` in ``docs/errcodes.md`` (``tests/test_openapi.py`` finds the slugs in the
code and checks both)."""


def problem_type(slug: str) -> str:
    """``/problems/<slug>``: the stable problem type URI reference for ``slug``."""
    return PROBLEM_BASE + slug


def problem_slug(type_: str) -> str:
    """The slug of a problem ``type``: ``/problems/<slug>``, an absolute URI ending so, or a
    ``urn:ringflow:problem:<slug>`` of a release before it; ``""`` for an empty type."""
    if type_.startswith(LEGACY_PROBLEM_BASE):
        return type_.removeprefix(LEGACY_PROBLEM_BASE)
    return type_.rsplit(PROBLEM_BASE, 1)[-1] if PROBLEM_BASE in type_ else type_
