"""Temporal search attributes of a call, so operations can find calls in the Temporal UI.

Registered by ``ringflow up`` (``temporal server start-dev --search-attribute``) and
in production by ``temporal operator search-attribute create``; the list is
:data:`SEARCH_ATTRIBUTES`.
"""

from __future__ import annotations

from typing import Any

from temporalio.common import SearchAttributeKey

CALL_UNIT = SearchAttributeKey.for_keyword("RingflowUnit")
CALL_CALLER = SearchAttributeKey.for_keyword("RingflowCaller")  # "device:LOBBY-1"
CALL_CALLEES = SearchAttributeKey.for_keyword_list("RingflowCallees")  # ["user:alice", ...]
CALL_PHASE = SearchAttributeKey.for_keyword("RingflowPhase")
CALL_END_REASON = SearchAttributeKey.for_keyword("RingflowEndReason")
CALL_ANSWERED_BY = SearchAttributeKey.for_keyword("RingflowAnsweredBy")

SEARCH_ATTRIBUTES: list[SearchAttributeKey[Any]] = [
    CALL_UNIT,
    CALL_CALLER,
    CALL_CALLEES,
    CALL_PHASE,
    CALL_END_REASON,
    CALL_ANSWERED_BY,
]
"""Every custom search attribute ringflow upserts."""


def dev_server_flags() -> list[str]:
    """``--search-attribute Name=Type`` flags for ``temporal server start-dev``."""
    kinds = {"KEYWORD": "Keyword", "KEYWORD_LIST": "KeywordList"}
    flags: list[str] = []
    for key in SEARCH_ATTRIBUTES:
        flags += [
            "--search-attribute",
            f"{key.name}={kinds[key.indexed_value_type.name.removeprefix('INDEXED_VALUE_TYPE_')]}",
        ]
    return flags
