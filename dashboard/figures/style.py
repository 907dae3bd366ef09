"""Shared look of every figure: fonts, margins, colours of the axes."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go
import plotly.io as pio

# The empty "none" theme, resolved: figures built without validation send it as is.
NO_THEME: dict[str, Any] = pio.templates["none"].to_plotly_json()

FONT = "Inter, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif"
GRID = "#e9ecef"
AXIS = "#6c757d"


def base_layout(**overrides: Any) -> dict[str, Any]:
    """Layout settings every figure starts from (a slim template keeps payloads small)."""
    layout: dict[str, Any] = {
        "template": NO_THEME,
        "font": {"family": FONT, "size": 12, "color": "#212529"},
        "paper_bgcolor": "white",
        "plot_bgcolor": "white",
        "margin": {"l": 60, "r": 20, "t": 30, "b": 50},
        "hoverlabel": {"font": {"family": FONT, "size": 12}, "align": "left"},
        "showlegend": False,
    }
    layout.update(overrides)
    return layout


def axis(title: str, **overrides: Any) -> dict[str, Any]:
    """An axis with a title (units in the title) and light grid lines."""
    out: dict[str, Any] = {
        "title": {"text": title, "font": {"size": 12, "color": AXIS}},
        "gridcolor": GRID,
        "zeroline": False,
        "linecolor": "#ced4da",
        "showline": True,
        "ticks": "outside",
        "tickcolor": "#ced4da",
    }
    out.update(overrides)
    return {key: value for key, value in out.items() if value is not None}


def empty_figure(message: str, height: int = 320) -> go.Figure:
    """A blank figure that says why it is blank."""
    layout = base_layout(height=height)
    layout["xaxis"] = {"visible": False}
    layout["yaxis"] = {"visible": False}
    layout["annotations"] = [
        {
            "text": message,
            "showarrow": False,
            "xref": "paper",
            "yref": "paper",
            "x": 0.5,
            "y": 0.5,
            "font": {"size": 14, "color": AXIS},
        }
    ]
    return go.Figure(layout=layout)


def latency_text(seconds: float | None) -> str:
    """A latency for people: ms, or µs below 0.1 ms; a dash when there is none."""
    if seconds is None:
        return "—"
    ms = seconds * 1000
    if ms < 0.1:
        return f"{ms * 1000:.4g} µs"
    return f"{ms:.4g} ms"
