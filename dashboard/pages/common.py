"""Pieces several pages use: graph settings, headers, the live base of a figure, the
access-token box and upload zones."""

from __future__ import annotations

from typing import Any

from dash import Dash, Input, Output, State, dcc, html

from dashboard.access import Access
from dashboard.uploads import MAX_FILES, UploadFolder

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
    """A white panel with an optional title; ``className`` adds classes to ``tl-card``."""
    head = [html.H3(title, className="tl-card-title")] if title else []
    classes = f"tl-card {kwargs.pop('className', '')}".strip()
    return html.Div([*head, *children], className=classes, **kwargs)


def filter_base(jobs: list[str], tasks: list[str], window: Any) -> dict[str, Any]:
    """The filter part of a figure's live base (None means all)."""
    return {
        "jobs": jobs or None,
        "tasks": tasks or None,
        "window": list(window) if window else None,
    }


def token_card(prefix: str, title: str) -> html.Div:
    """A card asking for the access token; its ids start with ``prefix``."""
    return card(
        html.Div(
            [
                field(
                    "Access token",
                    dcc.Input(id=f"{prefix}token-input", type="password", debounce=False),
                    "wide",
                ),
                html.Button("Use token", id=f"{prefix}token-apply", className="tl-button"),
                html.Span(id=f"{prefix}token-status", className="tl-muted"),
            ],
            className="tl-toolbar",
        ),
        title=title,
    )


def register_token_card(app: Dash, access: Access, prefix: str) -> None:
    """Keep the token of the card with ``prefix`` in the shared ``token-store``."""

    @app.callback(
        Output("token-store", "data", allow_duplicate=True),
        Output(f"{prefix}token-status", "children"),
        Input(f"{prefix}token-apply", "n_clicks"),
        Input(f"{prefix}token-input", "n_submit"),
        State(f"{prefix}token-input", "value"),
        prevent_initial_call=True,
    )
    def use_token(_n: Any, _s: Any, value: str | None):
        value = (value or "").strip()
        if not value:
            return None, "Enter the token first."
        ok = access.allows(value)
        return value, "Token accepted." if ok else "This token is not valid."


def upload_zone(
    id_: str, message_id: str, uploads: UploadFolder, kind: str, text: str, *, multiple: bool
) -> html.Div:
    """A drop zone for files of ``kind``, limited to the folder's size limit in the browser.

    Files the browser turns away (too large, wrong extension) are named in ``message_id`` by
    the guard ``register_upload_guard`` installs; the server checks every upload again.
    """
    accept = uploads.accept(kind)
    allowed = accept.split(",")
    listed = ", ".join(allowed[:-1]) + f" or {allowed[-1]}" if len(allowed) > 1 else allowed[0]
    return html.Div(
        dcc.Upload(
            id=id_,
            children=html.Div(
                [html.B(text), html.Span(f" ({listed}; at most {uploads.limit_text})")]
            ),
            accept=accept,
            max_size=uploads.limit,
            multiple=multiple,
            className="tl-upload",
            style={
                "border": "1px dashed #9aa5b1",
                "borderRadius": "6px",
                "padding": "14px",
                "textAlign": "center",
                "cursor": "pointer",
                "background": "#fafbfc",
            },
        ),
        **{
            "data-tl-upload": message_id,
            "data-max-bytes": str(uploads.limit),
            "data-max-files": str(MAX_FILES if multiple else 1),
            "data-limit-text": uploads.limit_text,
            "data-accept": accept,
            "data-accept-text": f"only {listed} files are accepted here.",
        },
    )


# Installed once per page load: checks files before the drop zone reads them, and names the
# ones it turns away (dcc.Upload drops files over ``max_size`` silently).
UPLOAD_GUARD_JS = """
function (_id) {
  if (window.tuneloomUploadGuard) return;
  window.tuneloomUploadGuard = true;
  const size = (n) => {
    if (n < 1024) return n + " bytes";
    let v = n;
    for (const unit of ["KiB", "MiB", "GiB"]) {
      v /= 1024;
      if (v < 1024 || unit === "GiB") return (Math.round(v * 10) / 10) + " " + unit;
    }
  };
  const problem = (zone, files) => {
    const d = zone.dataset, max = Number(d.maxBytes);
    if (files.length > Number(d.maxFiles)) {
      return files.length + " files at once; upload at most " + d.maxFiles + ".";
    }
    let total = 0;
    for (const file of files) {
      const name = file.name.split("/").pop();
      const lower = name.toLowerCase();
      if (!d.accept.split(",").some((ext) => lower.endsWith(ext))) {
        return name + ": " + d.acceptText;
      }
      if (file.size > max) {
        return name + " is " + size(file.size) + "; uploads are limited to " + d.limitText + ".";
      }
      total += file.size;
    }
    if (total > max) {
      return "These " + files.length + " files are " + size(total) +
        " together; uploads are limited to " + d.limitText + ".";
    }
    return null;
  };
  const guard = (event, files) => {
    const zone = event.target && event.target.closest
      ? event.target.closest("[data-tl-upload]") : null;
    if (!zone || !files || !files.length) return;
    const why = problem(zone, Array.from(files));
    if (why === null) return;
    event.stopImmediatePropagation();
    event.preventDefault();
    if (event.type === "change") event.target.value = "";
    window.dash_clientside.set_props(zone.dataset.tlUpload, {
      children: why, className: "tl-message tl-error"
    });
  };
  window.addEventListener("change", (e) => guard(e, e.target.files), true);
  window.addEventListener("drop", (e) => guard(e, e.dataTransfer && e.dataTransfer.files), true);
}
"""


def register_upload_guard(app: Dash, upload_id: str) -> None:
    """Install the browser-side upload guard when the upload ``upload_id`` is first shown."""
    app.clientside_callback(UPLOAD_GUARD_JS, Input(upload_id, "id"))
