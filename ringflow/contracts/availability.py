"""A resident's own availability (issue 11 item 5): do-not-disturb with an optional expiry,
set from the resident app (``PUT``/``DELETE /v1/me/do-not-disturb``, party token).

Stored in ``user_availability`` (migration 0009), beside the property manager's
``User.do_not_disturb`` (the directory). The ring plan skips a resident whose
do-not-disturb is active (either one) with errCode 1003 ``DO_NOT_DISTURB``, reason
``dnd: ...`` (``activities/directory.py`` ``precall_checks``). Away/available presence and
quiet hours are issue 10's and extend the same row.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import AwareDatetime, Field

from ringflow.contracts.common import Contract

MAX_DND_S = 30 * 86400
"""The latest expiry a resident may set: 30 days from now, seconds (a forgotten switch
must not silence a flat for longer without the resident choosing "until I switch it off")."""


class DoNotDisturbIn(Contract):
    """``PUT /v1/me/do-not-disturb`` body: ``until`` (UTC, in the future, at most
    :data:`MAX_DND_S` ahead) or None = until switched off."""

    until: AwareDatetime | None = None


class DoNotDisturb(Contract):
    """The resident's do-not-disturb as the ring plan sees it.

    - ``active``: calls skip this resident now (own switch on and not expired, or
      ``by_manager``);
    - ``until``: when the own switch expires (None: no expiry, or off);
    - ``since``: when the resident switched it on (None: off);
    - ``by_manager``: the property manager's ``User.do_not_disturb`` (directory; the
      resident cannot switch that one off).
    """

    active: bool
    until: datetime | None = None
    since: datetime | None = None
    by_manager: bool = False
    own: bool = Field(False, description="the resident's own switch is on and not expired")
