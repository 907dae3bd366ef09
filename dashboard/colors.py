"""Job colours shared by every page: a job keeps its colour everywhere (order of submission)."""

from __future__ import annotations

from collections.abc import Iterable

# Distinguishable on white, colour-blind friendly first (Okabe-Ito), then Tableau extras.
PALETTE: tuple[str, ...] = (
    "#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00",
    "#F0E442", "#000000", "#8c564b", "#7f7f7f", "#bcbd22", "#17becf",
)  # fmt: skip
ERROR_COLOR = "#d62728"


def job_colors(jobs_in_order: Iterable[str]) -> dict[str, str]:
    """Colour per job id; the n-th job gets the n-th palette colour (cycling after 12)."""
    out: dict[str, str] = {}
    for job in jobs_in_order:
        if job not in out:
            out[job] = PALETTE[len(out) % len(PALETTE)]
    return out


def color_of(colors: dict[str, str], job: str) -> str:
    """The job's colour, or grey for a job the mapping does not know yet."""
    return colors.get(job, "#999999")
