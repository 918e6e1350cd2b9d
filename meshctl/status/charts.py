"""Inline SVG charts drawn on the server (no JavaScript, nothing fetched: the host has no
internet and the page must work as it is)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from html import escape

from markupsafe import Markup

WIDTH, HEIGHT = 720, 180
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 12, 28
STATUS_COLORS = {
    "success": "#2e7d32", "nothing_to_do": "#81c784", "failed": "#c62828", "timeout": "#c62828",
    "interrupted": "#c62828", "abandoned": "#c62828", "running": "#1565c0",
}


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    magnitude = 10 ** (len(str(int(value))) - 1)
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * magnitude:
            return step * magnitude
    return 10 * magnitude


def _frame(title: str, y_max: float, unit: str, x_labels: list[tuple[float, str]], body: list[str]) -> Markup:
    plot_h = HEIGHT - TOP - BOTTOM
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" '
        f'role="img" aria-label="{escape(title)}" class="chart">',
        f"<title>{escape(title)}</title>",
    ]
    for i in range(5):
        y = TOP + plot_h * i / 4
        value = y_max * (4 - i) / 4
        parts.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" stroke="#e0e0e0"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" fill="#555">'
                     f"{value:g}{escape(unit) if i == 0 else ''}</text>")
    for x, label in x_labels:
        parts.append(f'<text x="{x:.1f}" y="{HEIGHT - 8}" text-anchor="middle" font-size="11" fill="#555">{escape(label)}</text>')
    parts.append(f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{WIDTH - RIGHT}" y2="{TOP + plot_h}" stroke="#999"/>')
    parts.extend(body)
    parts.append("</svg>")
    return Markup("".join(parts))


def _day_axis(first: date, days: int) -> tuple[callable, list[tuple[float, str]]]:
    plot_w = WIDTH - LEFT - RIGHT

    def x_of(moment: datetime) -> float:
        start = datetime.combine(first, datetime.min.time(), moment.tzinfo)
        return LEFT + plot_w * (moment - start).total_seconds() / (days * 86400)

    labels = []
    step = max(1, days // 6)
    for i in range(0, days, step):
        day = first + timedelta(days=i)
        labels.append((LEFT + plot_w * (i + 0.5) / days, day.strftime("%m-%d")))
    return x_of, labels


def durations(points: list[dict], since: str, days: int) -> Markup:
    """One mark per run: x its start, y its duration, coloured by status."""
    first = date.fromisoformat(since)
    days += 1  # through the end of today
    x_of, labels = _day_axis(first, days)
    y_max = _nice_max(max((p["seconds"] for p in points), default=0))
    plot_h = HEIGHT - TOP - BOTTOM
    body = []
    for p in points:
        started = datetime.fromisoformat(p["started_at"])
        x = x_of(started)
        y = TOP + plot_h * (1 - p["seconds"] / y_max)
        color = STATUS_COLORS.get(p["status"], "#757575")
        body.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{color}" class="run-dot status-{escape(p["status"])}">'
                    f'<title>{escape(p["started_at"][:16])} {escape(p["status"])} {p["seconds"]:g} s</title></circle>')
    return _frame(f"Run durations, last {days} days", y_max, " s", labels, body)


def per_day(bars: list[dict], since: str, days: int, title: str, unit: str = " s", color: str = "#1565c0") -> Markup:
    """One bar per day (`bars`: {"day", "seconds"})."""
    first = date.fromisoformat(since)
    days += 1  # through the end of today
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    _, labels = _day_axis(first, days)
    y_max = _nice_max(max((b["seconds"] for b in bars), default=0))
    slot = plot_w / days
    body = []
    for b in bars:
        i = (date.fromisoformat(b["day"]) - first).days
        if i < 0 or i >= days:
            continue
        h = plot_h * b["seconds"] / y_max
        x = LEFT + slot * i + slot * 0.15
        body.append(f'<rect x="{x:.1f}" y="{TOP + plot_h - h:.1f}" width="{slot * 0.7:.1f}" height="{h:.1f}" '
                    f'fill="{color}" class="day-bar"><title>{escape(b["day"])}: {b["seconds"]:g}{escape(unit)}</title></rect>')
    return _frame(title, y_max, unit, labels, body)
