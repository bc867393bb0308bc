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


PROBLEM_BASE = "urn:ringflow:problem:"
"""Prefix of every problem ``type`` (RFC 9457); the suffix is a stable slug."""


def problem_type(slug: str) -> str:
    """``urn:ringflow:problem:<slug>``: the stable problem type URI for ``slug``."""
    return PROBLEM_BASE + slug
