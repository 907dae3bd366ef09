"""Pieces several pages use: graph settings, headers, the live base of a figure."""

from __future__ import annotations

from typing import Any

from dash import html

GRAPH_CONFIG: dict[str, Any] = {
    "displaylogo": False,
    "modeBarButtonsToRemove": ["select2d", "lasso2d", "autoScale2d", "toImage"],
    "doubleClick": "reset",
}


def field(label: str, control: Any, *variants: str) -> html.Div:
    """A labelled control; each variant adds a ``tl-field-<variant>`` class (its width)."""
    classes = " ".join(["tl-field", *(f"tl-field-{v}" for v in variants)])
    return html.Div([html.Label(label, className="tl-label"), control], className=classes)


def page_head(title: str, text: str) -> html.Div:
    return html.Div([html.H2(title), html.P(text, className="tl-muted")], className="tl-page-head")


def card(*children: Any, title: str | None = None, **kwargs: Any) -> html.Div:
    head = [html.H3(title, className="tl-card-title")] if title else []
    return html.Div([*head, *children], className="tl-card", **kwargs)


def filter_base(jobs: list[str], tasks: list[str], window: Any) -> dict[str, Any]:
    """The filter part of a figure's live base (None means all)."""
    return {
        "jobs": jobs or None,
        "tasks": tasks or None,
        "window": list(window) if window else None,
    }


FONT = "Inter, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif"
TABLE_STYLE: dict[str, Any] = {
    "style_as_list_view": True,
    "style_table": {"overflowX": "auto"},
    "style_cell": {
        "fontFamily": FONT,
        "fontSize": 13,
        "padding": "5px 8px",
        "textAlign": "left",
        "maxWidth": 360,
        "overflow": "hidden",
        "textOverflow": "ellipsis",
    },
    "style_header": {"fontWeight": 600, "backgroundColor": "#f8f9fa"},
}
