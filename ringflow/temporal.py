"""The one place a Temporal client is made: pydantic data converter, settings' address."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from ringflow.settings import Settings

DATA_CONVERTER = pydantic_data_converter
"""The data converter of every client, worker and test environment (docs/design.md, Temporal conventions)."""


async def connect(settings: Settings) -> Client:
    """Connect to ``settings.temporal_address`` / ``temporal_namespace``.

    Raises ``RuntimeError`` (from temporalio) when the server is unreachable.
    """
    return await Client.connect(
        settings.temporal_address, namespace=settings.temporal_namespace, data_converter=DATA_CONVERTER
    )
