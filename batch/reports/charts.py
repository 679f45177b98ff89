"""Inline SVG charts for the offline dashboard: no JavaScript library, no CDN, nothing to load.

Each function returns one ``<svg class="chart">`` element as a string with every label escaped.
"""

from __future__ import annotations

from html import escape

PALETTE = ("#3b6fb6", "#e07b39", "#4f9d69", "#c04b4b", "#8a63b8", "#9c7a3c", "#d16aa5", "#6b7b8c")
_FONT = 'font-family="sans-serif" font-size="11"'


def hbar(items: list[tuple[str, float]], title: str, fmt: str = "{:.0f}", color: str = PALETTE[0],
         maximum: float | None = None) -> str:
    """Horizontal bars, one per (label, value), largest scale first as given."""
    width, label_w, row_h, top = 560, 150, 20, 28
    height = top + row_h * max(len(items), 1) + 8
    top_value = maximum or max((v for _, v in items), default=0) or 1
    parts = [_open(width, height, title)]
    for i, (label, value) in enumerate(items):
        y = top + i * row_h
        bar = (width - label_w - 60) * max(value, 0) / top_value
        parts.append(f'<text x="{label_w - 6}" y="{y + 14}" text-anchor="end" {_FONT}>{escape(str(label))}</text>'
                     f'<rect x="{label_w}" y="{y + 3}" width="{bar:.1f}" height="{row_h - 6}" fill="{color}">'
                     f'<title>{escape(str(label))}: {escape(fmt.format(value))}</title></rect>'
                     f'<text x="{label_w + bar + 4:.1f}" y="{y + 14}" {_FONT}>{escape(fmt.format(value))}</text>')
    if not items:
        parts.append(f'<text x="{width / 2}" y="{top + 14}" text-anchor="middle" {_FONT}>no data</text>')
    return "".join(parts) + "</svg>"


def columns(labels: list[str], series: dict[str, list[float]], title: str, y_label: str = "") -> str:
    """Vertical columns, stacked when there are several series, with a legend."""
    legend_rows = _legend_rows(list(series), 560 - 44) if len(series) > 1 else []
    width, height, left, bottom, top = 560, 270 + 16 * len(legend_rows), 44, 64 + 16 * len(legend_rows), 40
    plot_w, plot_h = width - left - 10, height - top - bottom
    totals = [sum(values[i] for values in series.values()) for i in range(len(labels))]
    top_value = max(totals, default=0) or 1
    step = plot_w / max(len(labels), 1)
    parts = [_open(width, height, title)]
    for tick in (0, 0.5, 1):
        y = top + plot_h * (1 - tick)
        parts.append(f'<line x1="{left}" x2="{width - 10}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>'
                     f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end" {_FONT}>{top_value * tick:.0f}</text>')
    for i, label in enumerate(labels):
        base = top + plot_h
        for k, (name, values) in enumerate(series.items()):
            h = plot_h * values[i] / top_value
            base -= h
            parts.append(f'<rect x="{left + i * step + 1:.1f}" y="{base:.1f}" width="{max(step - 2, 1):.1f}" '
                         f'height="{h:.1f}" fill="{PALETTE[k % len(PALETTE)]}"><title>{escape(str(label))} '
                         f'{escape(name)}: {values[i]:g}</title></rect>')
        if len(labels) <= 12 or i % max(len(labels) // 10, 1) == 0:
            x = left + i * step + step / 2
            parts.append(f'<text x="{x:.1f}" y="{top + plot_h + 12}" text-anchor="end" {_FONT} '
                         f'transform="rotate(-40 {x:.1f} {top + plot_h + 12})">{escape(str(label))}</text>')
    if y_label:
        parts.append(f'<text x="4" y="{top - 8}" {_FONT}>{escape(y_label)}</text>')
    colour = {name: PALETTE[k % len(PALETTE)] for k, name in enumerate(series)}
    for r, row in enumerate(legend_rows):
        y = height - 16 * (len(legend_rows) - r)
        for x, name in row:
            parts.append(f'<rect x="{left + x}" y="{y}" width="10" height="10" fill="{colour[name]}"/>'
                         f'<text x="{left + x + 13}" y="{y + 9}" {_FONT}>{escape(name)}</text>')
    return "".join(parts) + "</svg>"


def _legend_rows(names: list[str], width: int) -> list[list[tuple[int, str]]]:
    """Legend entries laid out left to right, wrapping to a new row at ``width``."""
    rows: list[list[tuple[int, str]]] = [[]]
    x = 0
    for name in names:
        size = 13 + 7 * len(name) + 14
        if x and x + size > width:
            rows.append([])
            x = 0
        rows[-1].append((x, name))
        x += size
    return rows


def histogram(values: list[float], edges: list[float], title: str, y_label: str = "conversations") -> str:
    """Counts of values in ``[edges[i], edges[i+1])`` (the last bin closed)."""
    counts = [0] * (len(edges) - 1)
    for value in values:
        for i in range(len(counts)):
            if edges[i] <= value < edges[i + 1] or (i == len(counts) - 1 and value == edges[-1]):
                counts[i] += 1
                break
    labels = [f"{edges[i]:g}–{edges[i + 1]:g}" for i in range(len(counts))]
    return columns(labels, {"conversations": counts}, title, y_label)


def _open(width: int, height: int, title: str) -> str:
    return (f'<svg class="chart" role="img" aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg" '
            f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">'
            f'<text x="4" y="16" font-family="sans-serif" font-size="13" font-weight="bold">{escape(title)}</text>')
