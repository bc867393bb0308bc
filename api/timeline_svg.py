"""A call's timeline as a picture (SVG): ``GET /v1/calls/{call_id}/timeline.svg``.

One lane per room (attempt: the rung target, in ring order), its phases as coloured bars
(initiate, wait = ringing, join, talk, finish: troubleshooting guide sections 1-6 and
docs/events.md, which say which event starts which phase), its events as marks labelled
with their names (a ``<title>`` on each gives the time, party and details as a tooltip),
the building call's own events (``callStarted``, ``escalated``, ``customAction``,
``callEnded``) on a row above the lanes, a time axis in seconds since the call started,
and the caller, unit and outcome in a header. The text version of the same history is
:mod:`ringflow.timeline`.

Built with :mod:`xml.etree.ElementTree`, which escapes every text and attribute, so names
from the directory cannot break the document. Width is fixed (:data:`WIDTH` px, the
picture scales with its ``viewBox``); height grows with the rooms and with the rows of
labels that events close in time need (about 60 px per room).
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime

from ringflow.contracts.calls import Attempt, CallView, Phase
from ringflow.contracts.events import TERMINAL_EVENTS, CallEvent, EventName
from ringflow.timeline import call_title, event_detail, party_label

SVG_NS = "http://www.w3.org/2000/svg"
WIDTH = 960
"""Width of the picture, px."""
LABEL_W = 190  # the lanes' names on the left
RIGHT_PAD = 24
HEADER_H = 58
AXIS_H = 26
BAR_H = 16
LABEL_ROW_H = 12
LANE_GAP = 10
LEGEND_H = 26
CHAR_W = 5.6  # mean width of a character of the 10 px labels, px (no font metrics here)
MIN_BAR_W = 2.0  # a phase that took no time is still seen, px
TITLE_CHARS = 104  # of the 15 px header line across the picture

PHASE_COLOURS: dict[Phase, str] = {
    Phase.INITIATE: "#9ca3af",
    Phase.WAIT: "#f59e0b",
    Phase.JOIN: "#3b82f6",
    Phase.TALK: "#16a34a",
    Phase.FINISH: "#a855f7",
}
"""Fill of each phase's bar (also the legend)."""

PHASE_NAMES: dict[Phase, str] = {Phase.WAIT: "wait (ringing)"}

# The event that starts a phase of a room (docs/events.md); the terminal events start finish.
_PHASE_STARTS: dict[EventName, Phase] = {
    EventName.RINGING: Phase.WAIT,
    EventName.ANSWERED: Phase.JOIN,
    EventName.CALLING: Phase.TALK,
}


@dataclass(frozen=True)
class Segment:
    """One phase of a room: ``start_s``/``end_s`` seconds since the call started."""

    phase: Phase
    start_s: float
    end_s: float


def room_phases(
    attempt: Attempt, events: list[CallEvent], started_at: datetime, now: datetime
) -> list[Segment]:
    """The phases of one room from its events (history order): initiate from the attempt's
    start, wait from ``ringing``, join from ``answered``, talk from ``calling``, finish from
    the terminal event (``timeout``, ``busy``, ``hangUpVoip``, ...) to the room's last event.
    A room still live ends at ``now``. Times in seconds since ``started_at``."""

    def s(t: datetime) -> float:
        return (t - started_at).total_seconds()

    start = attempt.started_at or (events[0].at if events else started_at)
    marks: list[tuple[Phase, float]] = [(Phase.INITIATE, s(start))]
    finished = False
    for ev in events:
        phase = Phase.FINISH if ev.name in TERMINAL_EVENTS else _PHASE_STARTS.get(ev.name)
        if phase is None or finished or phase == marks[-1][0]:
            continue
        marks.append((phase, max(s(ev.at), marks[-1][1])))
        finished = phase is Phase.FINISH
    ends = [s(e.at) for e in events] + ([s(attempt.ended_at)] if attempt.ended_at else [])
    live = not finished and attempt.ended_at is None
    end = max([s(now) if live else 0.0, marks[-1][1], *ends])
    return [
        Segment(phase, at, marks[i + 1][1] if i + 1 < len(marks) else end)
        for i, (phase, at) in enumerate(marks)
    ]


def _tick_step(total_s: float) -> float:
    """A round axis step giving at most ~10 ticks over ``total_s`` seconds."""
    for step in (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600):
        if total_s / step <= 10:
            return step
    return 3600 * math.ceil(total_s / 36000)


def _fmt_s(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".") + " s"


def _fit(text: str, chars: int) -> str:
    """``text`` cut to ``chars`` characters, the cut marked with an ellipsis."""
    return text if len(text) <= chars else text[: chars - 1] + "…"


def _label_spans(xs: list[tuple[float, str]]) -> list[tuple[int, bool]]:
    """For labels of marks at x (px, ascending), each label's row and whether it is drawn
    to the left of its mark (near the right edge): labels on one row never overlap."""
    taken: list[list[tuple[float, float]]] = []
    out = []
    for x, text in xs:
        width = len(text) * CHAR_W + 4
        left_of_mark = x + 2 + width > WIDTH - 2
        span = (x - 2 - width, x - 2) if left_of_mark else (x + 2, x + 2 + width)
        row = next(
            (i for i, spans in enumerate(taken) if all(span[1] <= a or span[0] >= b for a, b in spans)),
            len(taken),
        )
        if row == len(taken):
            taken.append([])
        taken[row].append(span)
        out.append((row, left_of_mark))
    return out


class _Svg:
    """A tiny builder over ElementTree (every value escaped by the serializer)."""

    def __init__(self) -> None:
        self.root = ET.Element("svg", {"xmlns": SVG_NS, "font-family": "system-ui, sans-serif"})

    def add(
        self, parent: ET.Element | None, tag: str, text: str | None = None, **attrs: object
    ) -> ET.Element:
        el = ET.SubElement(
            self.root if parent is None else parent,
            tag,
            {k.rstrip("_").replace("_", "-"): _attr(v) for k, v in attrs.items() if v is not None},
        )
        if text is not None:
            el.text = text
        return el


def _attr(value: object) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".") if isinstance(value, float) else str(value)


def _tooltip(ev: CallEvent, t_s: float) -> str:
    who = " ".join(x for x in (party_label(ev.party), party_label(ev.listener)) if x)
    return " ".join(x for x in (f"{ev.name.value} at {_fmt_s(t_s)}", who, event_detail(ev)) if x)


def render_timeline_svg(view: CallView, now: datetime) -> str:
    """The SVG document (UTF-8 text, with an XML declaration) of ``view``'s history.

    ``now``: the end of the time axis for a call still live (an ended call ends at its
    last event). Rooms come in ring order (``Attempt.seq``); events without a room, or of a
    room not among the attempts, go on the call's row."""
    attempts = sorted(view.attempts, key=lambda a: (a.seq, a.round))
    by_room: dict[str, list[CallEvent]] = {a.room_id: [] for a in attempts}
    call_events: list[CallEvent] = []
    for ev in view.events:
        by_room.get(ev.room_id or "", call_events).append(ev)
    t0 = view.started_at
    lanes = [room_phases(a, by_room[a.room_id], t0, now) for a in attempts]
    ended = view.phase is Phase.ENDED
    last = max(
        [(e.at - t0).total_seconds() for e in view.events]
        + [seg.end_s for lane in lanes for seg in lane]
        + ([(view.ended_at - t0).total_seconds()] if view.ended_at else [])
        + ([] if ended else [(now - t0).total_seconds()])
        + [0.0]
    )
    step = _tick_step(max(last, 0.1))
    total = max(step * math.ceil(last / step - 1e-9), step)
    plot_w = WIDTH - LABEL_W - RIGHT_PAD

    def x(t_s: float) -> float:
        return LABEL_W + plot_w * min(max(t_s, 0.0), total) / total

    svg = _Svg()
    root = svg.root
    svg.add(None, "title", f"Timeline of call {view.call_id}")
    svg.add(None, "rect", x=0, y=0, width=WIDTH, height="100%", fill="#ffffff")

    # header: who called whom, and how it went
    title = call_title(view).rsplit(": call ", 1)[0]  # the call id goes on the facts line
    header = svg.add(
        None,
        "text",
        _fit(title, TITLE_CHARS),
        x=12,
        y=22,
        font_size=15,
        font_weight=600,
        fill="#111827",
        class_="title",
    )
    if len(title) > TITLE_CHARS:
        svg.add(header, "title", title)
    facts = [
        f"call {view.call_id}",
        view.room_type.value,
        view.strategy.value,
        f"started {view.started_at.astimezone().strftime('%Y-%m-%d %H:%M:%S %Z')}",
    ]
    if view.phase is not Phase.ENDED:
        facts.append(f"phase {view.phase.value}")
    if view.end_reason:
        facts.append(f"end {view.end_reason}" + (f" (errCode {int(view.err_code)})" if view.err_code else ""))
    if view.answered_by:
        facts.append(f"answered by {party_label(view.answered_by)}")
    if view.keep_time_s is not None:
        facts.append(f"keepTime {view.keep_time_s} s")
    svg.add(
        None, "text", _fit(" · ".join(facts), 150), x=12, y=42, font_size=11, fill="#4b5563", class_="facts"
    )

    # time axis
    axis_y = HEADER_H + AXIS_H - 8
    axis = svg.add(None, "g", class_="axis", font_size=10, fill="#4b5563")
    ticks = [i * step for i in range(round(total / step) + 1)]
    rows_top = HEADER_H + AXIS_H

    def lane_block(
        name: str,
        sub: str,
        events: list[CallEvent],
        segments: list[Segment],
        cls: str,
        y: float,
        room_id: str | None,
    ) -> float:
        points = [((e.at - t0).total_seconds(), e) for e in events]
        spans = _label_spans([(x(t), e.name.value) for t, e in points])
        height = BAR_H + LABEL_ROW_H * (max(row for row, _ in spans) + 1 if spans else 1) + 6
        g = svg.add(None, "g", class_=cls, **({"data-room-id": room_id} if room_id else {}))
        svg.add(
            g,
            "rect",
            x=0,
            y=y - 4,
            width=WIDTH,
            height=height + 4,
            fill="#f9fafb" if cls == "lane" else "#ffffff",
        )
        svg.add(
            g,
            "text",
            name,
            x=12,
            y=y + 12,
            font_size=12,
            font_weight=600,
            fill="#111827",
            class_="lane-label",
        )
        if sub:
            svg.add(g, "text", sub, x=12, y=y + 25, font_size=10, fill="#6b7280", class_="lane-sub")
        for seg in segments:
            left = x(seg.start_s)
            bar = svg.add(
                g,
                "rect",
                x=left,
                y=y,
                width=max(x(seg.end_s) - left, MIN_BAR_W),
                height=BAR_H,
                fill=PHASE_COLOURS[seg.phase],
                class_=f"phase {seg.phase.value}",
                data_phase=seg.phase.value,
            )
            svg.add(
                bar,
                "title",
                f"{PHASE_NAMES.get(seg.phase, seg.phase.value)}: {_fmt_s(seg.start_s)} - {_fmt_s(seg.end_s)}",
            )
        for (t, ev), (row, left_of_mark) in zip(points, spans, strict=True):
            mark = svg.add(g, "g", class_="event", data_event=ev.name.value)
            px = x(t)
            svg.add(mark, "title", _tooltip(ev, t))
            svg.add(
                mark,
                "line",
                x1=px,
                y1=y - 3,
                x2=px,
                y2=y + BAR_H + 2,
                stroke="#111827",
                stroke_width=1,
            )
            if row:  # a light leader down to a label on a lower row, under the other labels' text
                svg.add(
                    mark,
                    "line",
                    x1=px,
                    y1=y + BAR_H + 2,
                    x2=px,
                    y2=y + BAR_H + 2 + LABEL_ROW_H * row,
                    stroke="#9ca3af",
                    stroke_width=1,
                    stroke_dasharray="2 2",
                )
            svg.add(
                mark,
                "text",
                ev.name.value,
                x=px - 2 if left_of_mark else px + 2,
                y=y + BAR_H + 11 + LABEL_ROW_H * row,
                font_size=10,
                fill="#111827",
                text_anchor="end" if left_of_mark else None,
            )
        return height

    y: float = rows_top + 4
    y += (
        lane_block(
            "call", f"unit {view.unit_id}" if view.unit_id else "", call_events, [], "call-row", y, None
        )
        + LANE_GAP
    )
    for attempt, segments in zip(attempts, lanes, strict=True):
        name = f"{attempt.seq}. {attempt.listener_name or attempt.listener.id}"
        sub = party_label(attempt.listener) + (
            f" · {attempt.outcome.value}" if attempt.outcome else f" · {attempt.phase.value}"
        )
        if attempt.fallback:
            sub += " · fallback"
        y += lane_block(name, sub, by_room[attempt.room_id], segments, "lane", y, attempt.room_id) + LANE_GAP

    for t in ticks:
        px = x(t)
        svg.add(axis, "line", x1=px, y1=axis_y + 3, x2=px, y2=y, stroke="#e5e7eb", stroke_width=1)
        svg.add(axis, "text", _fmt_s(t), x=px, y=axis_y, text_anchor="middle")
    svg.add(axis, "text", "seconds since the call started", x=12, y=axis_y, fill="#6b7280")
    root.remove(axis)
    root.insert(2, axis)  # under the lanes' marks, above the background

    # legend
    legend = svg.add(None, "g", class_="legend", font_size=11, fill="#374151")
    lx = 12.0
    for phase, colour in PHASE_COLOURS.items():
        svg.add(legend, "rect", x=lx, y=y + 6, width=12, height=12, fill=colour)
        label = PHASE_NAMES.get(phase, phase.value)
        svg.add(legend, "text", label, x=lx + 16, y=y + 16)
        lx += 16 + len(label) * 6.2 + 18
    height = y + LEGEND_H
    root.set("width", str(WIDTH))
    root.set("height", _attr(float(height)))
    root.set("viewBox", f"0 0 {WIDTH} {_attr(float(height))}")
    root.set("role", "img")
    root.set("aria-label", f"Timeline of call {view.call_id}: {len(attempts)} rooms")
    return ET.tostring(root, encoding="unicode", xml_declaration=True)
