"""The ``reused=`` task-detail convention: parsing, per-record and per-task origins."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from collectors.reuse import (
    REUSE_ONLY,
    REUSED_PREFIX,
    SIBLING_PREFIX,
    TUNED_HERE,
    UNTUNED,
    WARM_START,
    ReusedSchedule,
    best_origins,
    job_reuse,
    parse_reused,
    record_origins,
    reuse_index,
    reused_records,
)

SOURCE = "zoo:mobilenet/fused_conv2d_add_relu"


def records(rows: list[tuple[str, str, int, float | None]]) -> pd.DataFrame:
    """A records frame: (job, task, candidate, mean seconds or None), positions in order."""
    return pd.DataFrame(
        [(pos, job, task, cand, secs) for pos, (job, task, cand, secs) in enumerate(rows, 1)],
        columns=["pos", "job", "task", "candidate", "mean_secs"],
    )


def tasks(rows: list[tuple[str, str, str | None]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["job", "task", "detail"])


def detail(*schedules: ReusedSchedule, extra: str = "spec=conv") -> str:
    return "\n".join([extra, *(s.detail_line() for s in schedules)])


def test_detail_lines_round_trip_and_read_as_text() -> None:
    plain = ReusedSchedule(0, SOURCE, "replay")
    fitted = ReusedSchedule(3, SOURCE, "anchor-transfer", refitted=True)
    fallback = ReusedSchedule(4, "", UNTUNED)
    assert plain.detail_line().startswith(REUSED_PREFIX)
    assert "refitted" not in plain.detail_line()
    assert parse_reused(detail(plain, fitted, fallback)) == {0: plain, 3: fitted, 4: fallback}
    assert plain.text == f"reused from {SOURCE} (replay)"
    assert fitted.text == f"reused from {SOURCE} (anchor-transfer, refitted tiles)"
    assert fallback.text == UNTUNED and not fallback.from_library and plain.from_library


def test_a_siblings_schedule_names_the_task_and_is_no_start_from_a_library() -> None:
    sibling = ReusedSchedule(9, "matmul:96x96x96", "replay", refitted=True, sibling=True)
    library = ReusedSchedule(0, SOURCE, "replay")
    fallback = ReusedSchedule(1, "", UNTUNED)
    assert sibling.detail_line().startswith(SIBLING_PREFIX)
    assert parse_reused(detail(library, sibling)) == {0: library, 9: sibling}
    assert sibling.text == "from sibling matmul:96x96x96 (replay, refitted tiles)"
    assert not sibling.from_library
    frame = tasks(
        [("j1", "a", detail(sibling)), ("j2", "a", detail(library, sibling)),
         ("j3", "a", detail(library, fallback, sibling))]
    )  # fmt: skip
    assert job_reuse(frame) == {"j2": WARM_START, "j3": REUSE_ONLY}  # j1 searched alone
    found = records(
        [("j1", "a", 0, 2e-3), ("j1", "a", 9, 1e-3), ("j2", "a", 0, 3e-3), ("j2", "a", 9, 4e-3)]
    )
    assert list(record_origins(found, frame)) == [None, sibling.text, library.text, sibling.text]
    best = best_origins(found, frame).set_index("job")
    assert best.loc["j1", "origin"] == sibling.text and best.loc["j1", "reused"] == 0
    assert best.loc["j2", "origin"] == library.text and best.loc["j2", "reused"] == 1


@pytest.mark.parametrize(
    "line",
    [
        "reused=",
        "reused={not json",
        "reused=[1, 2]",
        'reused={"candidate": "0", "source": "s", "method": "replay"}',
        'reused={"candidate": true, "source": "s", "method": "replay"}',
        'reused={"candidate": -1, "source": "s", "method": "replay"}',
        'reused={"candidate": 1.0, "source": "s", "method": "replay"}',
        'reused={"candidate": 0, "method": "replay"}',
        'reused={"candidate": 0, "source": 7, "method": "replay"}',
        'stopped=reused={"candidate": 0, "source": "s", "method": "replay"}',
    ],
)
def test_malformed_lines_are_skipped_and_the_good_ones_kept(line: str) -> None:
    good = ReusedSchedule(2, SOURCE, "replay")
    assert parse_reused(line) == {}
    assert parse_reused(f"{line}\n{good.detail_line()}\n{line}") == {2: good}


def test_no_detail_or_no_reuse_means_nothing_reused() -> None:
    assert parse_reused(None) == {} and parse_reused("") == {}
    assert parse_reused("spec=matmul:64\nstopped=done") == {}
    assert reuse_index(tasks([("j", "t", None), ("j", "u", "spec=x")])) == {}
    assert reuse_index(pd.DataFrame(columns=["job", "task", "detail"])) == {}


def test_a_method_left_empty_still_names_the_source() -> None:
    (found,) = parse_reused('reused={"candidate": 0, "source": "zoo:m/t", "method": ""}').values()
    assert found.text == "reused from zoo:m/t" and found.from_library
    assert ReusedSchedule(0, "zoo:m/t", "", refitted=True).text == (
        "reused from zoo:m/t (refitted tiles)"
    )


def test_refitted_must_be_true_and_a_repeated_candidate_keeps_its_last_line() -> None:
    line = 'reused={"candidate": 1, "source": "a", "method": "replay", "refitted": "yes"}'
    assert parse_reused(line)[1].refitted is False
    again = ReusedSchedule(1, "b", "replay")
    assert parse_reused(f"{line}\n{again.detail_line()}") == {1: again}


def test_best_origins_names_where_each_tasks_best_came_from() -> None:
    frame = records([
        ("warm", "conv", 0, 2.2e-3), ("warm", "conv", 1, None), ("warm", "conv", 2, 1.9e-3),
        ("warm", "dense", 0, 3.0e-3), ("warm", "dense", 1, 3.5e-3),
        ("cold", "conv", 0, 5.0e-3), ("cold", "conv", 1, 2.0e-3),
    ])  # fmt: skip
    known = tasks([
        ("warm", "conv", detail(ReusedSchedule(0, SOURCE, "replay"),
                                ReusedSchedule(1, SOURCE, "anchor-transfer", refitted=True))),
        ("warm", "dense", detail(ReusedSchedule(0, "zoo:resnet/dense", "replay"))),
        ("cold", "conv", "spec=conv"),
    ])  # fmt: skip
    out = best_origins(frame, known).set_index(["job", "task"])
    assert list(out.index) == [("warm", "conv"), ("warm", "dense"), ("cold", "conv")]
    conv = out.loc[("warm", "conv")]
    assert conv["origin"] == TUNED_HERE and conv["candidate"] == 2
    assert conv["reused"] == 2  # the failed library schedule was measured too
    assert conv["best_reused"] == pytest.approx(2.2e-3)
    dense = out.loc[("warm", "dense")]
    assert dense["origin"] == "reused from zoo:resnet/dense (replay)"
    assert dense["reused"] == 1 and dense["mean_secs"] == pytest.approx(3.0e-3)
    cold = out.loc[("cold", "conv")]
    assert cold["origin"] == TUNED_HERE and cold["reused"] == 0
    assert math.isnan(cold["best_reused"])
    # The parsed index gives the same answer as the tasks frame.
    pd.testing.assert_frame_equal(
        best_origins(frame, reuse_index(known)), best_origins(frame, known)
    )


def test_on_a_tie_the_earlier_record_holds_the_best() -> None:
    known = tasks([("j", "t", detail(ReusedSchedule(1, SOURCE, "replay")))])
    library_first = records([("j", "t", 0, 4e-3), ("j", "t", 1, 3e-3), ("j", "t", 2, 3e-3)])
    out = best_origins(library_first, known)
    assert out["candidate"].tolist() == [1] and out["origin"].iloc[0].startswith("reused from")
    search_first = records([("j", "t", 0, 3e-3), ("j", "t", 1, 3e-3)])
    assert best_origins(search_first, known)["origin"].tolist() == [TUNED_HERE]
    # Out of position order, positions still decide.
    shuffled = library_first.iloc[::-1]
    assert best_origins(shuffled, known)["candidate"].tolist() == [1]


def test_untuned_fallback_is_an_origin_but_not_a_library_schedule() -> None:
    known = tasks([("only", "t", detail(ReusedSchedule(0, SOURCE, "replay"),
                                        ReusedSchedule(1, "", UNTUNED)))])  # fmt: skip
    frame = records([("only", "t", 0, 5e-3), ("only", "t", 1, 4e-3)])
    out = best_origins(frame, known).iloc[0]
    assert out["origin"] == UNTUNED and out["reused"] == 1
    assert out["best_reused"] == pytest.approx(5e-3)


def test_tasks_without_a_valid_record_have_no_row() -> None:
    known = tasks([("j", "t", detail(ReusedSchedule(0, SOURCE, "replay")))])
    frame = records([("j", "t", 0, None), ("j", "u", 0, 1e-3)])
    out = best_origins(frame, known)
    assert out[["job", "task", "origin"]].values.tolist() == [["j", "u", TUNED_HERE]]
    empty = best_origins(records([("j", "t", 0, None)]), known)
    assert empty.empty and "origin" in empty.columns


def test_record_origins_and_reused_records_follow_row_order() -> None:
    known = tasks([
        ("warm", "conv", detail(ReusedSchedule(0, SOURCE, "replay"),
                                ReusedSchedule(5, "", UNTUNED))),
        ("warm", "dense", "spec=dense"),
    ])  # fmt: skip
    frame = records([
        ("cold", "conv", 0, 1e-3), ("warm", "conv", 1, 1e-3), ("warm", "conv", 0, 2e-3),
        ("warm", "dense", 0, 1e-3), ("warm", "conv", 5, None),
    ])  # fmt: skip
    origins = record_origins(frame, known)
    assert origins.tolist() == [None, None, f"reused from {SOURCE} (replay)", None, UNTUNED]
    assert reused_records(frame, known) == {3: f"reused from {SOURCE} (replay)", 5: UNTUNED}
    assert record_origins(frame, {}).tolist() == [None] * 5
    assert reused_records(frame.iloc[:0], known) == {}


def test_jobs_are_told_apart_by_how_they_reused() -> None:
    known = tasks([
        ("warm", "a", detail(ReusedSchedule(0, SOURCE, "replay"))),
        ("warm", "b", "spec=b"),
        ("only", "a", detail(ReusedSchedule(0, SOURCE, "replay"))),
        ("only", "b", detail(ReusedSchedule(0, "", UNTUNED))),
        ("cold", "a", None),
    ])  # fmt: skip
    assert job_reuse(known) == {"warm": WARM_START, "only": REUSE_ONLY}
    assert set(job_reuse(tasks([("cold", "a", "spec=a")]))) == set()
