from datetime import UTC, datetime, timedelta
from functools import partial

import numpy as np
import polars as pl
import pytest

from tradelab.data.errors import DataError
from tradelab.data.schema import conform
from tradelab.data.splits import (
    Fold,
    Segment,
    SplitPlan,
    check_plan,
    chronological_split,
    chronological_split_by_date,
    split_dataset,
    verify_plan,
    walk_forward,
)
from tradelab.data.store import Store

T0 = datetime(2024, 1, 1, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)


def times(steps: list[int] | range, step: timedelta = MINUTE) -> pl.Series:
    return pl.Series("ts", [T0 + k * step for k in steps], dtype=pl.Datetime("ms", "UTC"))


def rows(segment: Segment) -> tuple[int, int, int]:
    return segment.first_row, segment.last_row, segment.rows


# ---------------------------------------------------------------- chronological by fraction


def test_fraction_split_by_hand():
    plan = chronological_split(times(range(20)), train=0.6, val=0.2, test=0.2)
    assert [s.name for s in plan.segments] == ["train", "val", "test"]
    assert [rows(s) for s in plan.segments] == [(0, 11, 12), (12, 15, 4), (16, 19, 4)]
    train, val, test = plan.segments
    # [start, end): open of the first bar to close of the last one
    assert (train.start, train.end) == (T0, T0 + 12 * MINUTE)
    assert (val.start, val.end) == (T0 + 12 * MINUTE, T0 + 16 * MINUTE)
    assert test.end == T0 + 20 * MINUTE
    assert plan.rows == 20
    assert plan.kind == "chronological"


def test_embargo_is_cut_from_the_start_of_later_segments():
    plan = chronological_split(times(range(20)), train=0.6, val=0.2, test=0.2, embargo_bars=1)
    assert [rows(s) for s in plan.segments] == [(0, 11, 12), (13, 15, 3), (17, 19, 3)]
    assert plan.embargo_bars == 1
    # rows 12 and 16 belong to no segment
    assert sum(s.rows for s in plan.segments) + 2 * plan.embargo_bars == 20


def test_boundaries_round_half_up_and_leftover_rows_are_unused():
    # cuts at round(2.5) = 3, round(5) = 5, 10
    plan = chronological_split(times(range(10)), train=0.25, val=0.25, test=0.5)
    assert [s.rows for s in plan.segments] == [3, 2, 5]
    # fractions summing to 0.75 without validation: the newest 5 rows are in no segment
    plan = chronological_split(times(range(20)), train=0.5, val=0, test=0.25)
    assert [(s.name, *rows(s)) for s in plan.segments] == [("train", 0, 9, 10), ("test", 10, 14, 5)]


@pytest.mark.parametrize(
    ("fractions", "field"),
    [
        ({"train": 0.0}, "train"),
        ({"train": -0.1}, "train"),
        ({"val": -0.1}, "val"),
        ({"test": 1.5}, "test"),
        ({"test": 0.0}, "test"),
        ({"train": 0.7, "val": 0.2, "test": 0.2}, "test"),
    ],
)
def test_invalid_fractions_name_the_field(fractions, field):
    with pytest.raises(DataError) as info:
        chronological_split(times(range(100)), **fractions)
    assert info.value.column == field


def test_a_segment_left_without_bars_is_an_error():
    with pytest.raises(DataError, match="'val' would hold no bars") as info:
        chronological_split(times(range(20)), train=0.6, val=0.1, test=0.3, embargo_bars=2)
    assert info.value.column == "val"


@pytest.mark.parametrize(
    "ts",
    [
        times([0]),
        times([0, 2, 1]),
        times([0, 1, 1, 2]),
        pl.Series("ts", [0, 1, 2]),
    ],
)
def test_bad_bar_times_are_refused(ts):
    with pytest.raises(DataError) as info:
        chronological_split(ts)
    assert info.value.column == "ts"


# ---------------------------------------------------------------- chronological by date


def gappy_hours() -> pl.Series:
    """Hourly bars with hours 5 to 9 missing: 12 rows."""
    return times([0, 1, 2, 3, 4, 10, 11, 12, 13, 14, 15, 16], HOUR)


def test_date_split_lands_on_bars_that_exist():
    plan = chronological_split_by_date(
        gappy_hours(), val_start="2024-01-01T06:00Z", test_start="2024-01-01T13:00Z", end="2024-01-01T16:00Z"
    )
    train, val, test = plan.segments
    assert [rows(s) for s in plan.segments] == [(0, 4, 5), (5, 7, 3), (8, 10, 3)]
    assert train.end == T0 + 5 * HOUR  # close of the 04:00 bar, not val_start
    assert val.start == T0 + 10 * HOUR  # the first bar after the gap
    assert test.end == T0 + 16 * HOUR  # the 16:00 bar is excluded by ``end``


def test_date_split_with_embargo_and_without_validation():
    with_embargo = chronological_split_by_date(
        gappy_hours(), val_start="2024-01-01T06:00Z", test_start="2024-01-01T13:00Z", embargo_bars=1
    )
    assert [rows(s) for s in with_embargo.segments] == [(0, 4, 5), (6, 7, 2), (9, 11, 3)]
    assert with_embargo.segments[1].start == T0 + 11 * HOUR

    no_val = chronological_split_by_date(gappy_hours(), test_start=T0 + 12 * HOUR)
    assert [(s.name, *rows(s)) for s in no_val.segments] == [("train", 0, 6, 7), ("test", 7, 11, 5)]


@pytest.mark.parametrize(
    ("dates", "field"),
    [
        ({"val_start": "2024-01-01T12:00Z", "test_start": "2024-01-01T12:00Z"}, "test_start"),
        ({"test_start": "2024-01-01T12:00Z", "end": "2024-01-01T11:00Z"}, "end"),
    ],
)
def test_dates_out_of_order_name_the_field(dates, field):
    with pytest.raises(DataError) as info:
        chronological_split_by_date(gappy_hours(), **dates)
    assert info.value.column == field


def test_date_inside_a_gap_with_no_bars_after_it_is_an_error():
    with pytest.raises(DataError, match="'test' would hold no bars"):
        chronological_split_by_date(gappy_hours(), test_start="2024-01-01T06:00Z", end="2024-01-01T09:00Z")


# ---------------------------------------------------------------- walk-forward


def fold_rows(plan: SplitPlan) -> list[list[tuple[str, int, int]]]:
    return [[(s.name, s.first_row, s.last_row) for s in fold.segments] for fold in plan.folds]


def test_walk_forward_expanding_window():
    plan = walk_forward(times(range(100)), n_folds=3, test_bars=10, embargo_bars=2)
    assert plan.kind == "walk_forward"
    assert fold_rows(plan) == [
        [("train", 0, 67), ("test", 70, 79)],
        [("train", 0, 77), ("test", 80, 89)],
        [("train", 0, 87), ("test", 90, 99)],
    ]
    assert [fold.index for fold in plan.folds] == [0, 1, 2]
    assert verify_plan(plan, warmup_bars=1, horizon_bars=1) == []


def test_walk_forward_rolling_window_with_validation():
    plan = walk_forward(times(range(100)), n_folds=3, test_bars=10, train_bars=20, val_bars=5, embargo_bars=2)
    assert fold_rows(plan) == [
        [("train", 41, 60), ("val", 63, 67), ("test", 70, 79)],
        [("train", 51, 70), ("val", 73, 77), ("test", 80, 89)],
        [("train", 61, 80), ("val", 83, 87), ("test", 90, 99)],
    ]
    assert all(fold.train.rows == 20 for fold in plan.folds)
    assert verify_plan(plan, warmup_bars=1) == []


def test_walk_forward_test_fraction_covers_that_share_of_the_bars():
    by_fraction = walk_forward(times(range(100)), n_folds=3, test_fraction=0.3, embargo_bars=2)
    assert by_fraction == walk_forward(times(range(100)), n_folds=3, test_bars=10, embargo_bars=2)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"n_folds": 3}, "test_bars"),
        ({"n_folds": 3, "test_bars": 10, "test_fraction": 0.3}, "test_fraction"),
        ({"n_folds": 0, "test_bars": 10}, "n_folds"),
        ({"n_folds": 3, "test_bars": 0}, "test_bars"),
        ({"n_folds": 3, "test_fraction": 0.001}, "test_fraction"),
        ({"n_folds": 3, "test_bars": 10, "embargo_bars": -1}, "embargo_bars"),
        ({"n_folds": 3, "test_bars": 10, "train_bars": 61}, "train_bars"),  # 60 bars left before fold 0
        ({"n_folds": 10, "test_bars": 10}, "n_folds"),  # no bar left to train fold 0
    ],
)
def test_walk_forward_invalid_arguments_name_the_field(kwargs, field):
    with pytest.raises(DataError) as info:
        walk_forward(times(range(90)), **kwargs)
    assert info.value.column == field


# ---------------------------------------------------------------- verifier


def test_verifier_passes_a_good_plan_and_catches_a_too_small_embargo():
    ts = times(range(1000))
    assert verify_plan(chronological_split(ts, embargo_bars=21), warmup_bars=20, horizon_bars=1) == []
    check_plan(chronological_split(ts, embargo_bars=21), warmup_bars=20)

    problems = verify_plan(chronological_split(ts, embargo_bars=20), warmup_bars=20, horizon_bars=1)
    assert len(problems) == 2
    assert problems[0].startswith("'train' leaks into 'val': 20 bar(s) between them, need >= 21")
    assert problems[1].startswith("'val' leaks into 'test'")
    with pytest.raises(DataError, match="leaks into") as info:
        check_plan(chronological_split(ts, embargo_bars=20), warmup_bars=20)
    assert info.value.column == "splits"


def test_without_embargo_the_next_bar_reward_leaks_by_default():
    plan = chronological_split(times(range(100)), val=0)
    assert verify_plan(plan) == [
        "'train' leaks into 'test': 0 bar(s) between them, need >= 1 (warmup 0 + horizon 1); raise embargo_bars to 1"
    ]
    assert verify_plan(plan, horizon_bars=0) == []


def tampered(plan: SplitPlan, index: int, **changes: object) -> SplitPlan:
    segments = list(plan.segments)
    segments[index] = segments[index].model_copy(update=changes)
    return plan.model_copy(update={"segments": segments})


def test_verifier_catches_overlap_by_rows():
    plan = chronological_split(times(range(100)), embargo_bars=5)  # train 0..69, val 75..84, test 90..99
    val = plan.segments[1]
    bad = tampered(plan, 1, first_row=60, rows=25, start=val.start - 15 * MINUTE)
    problems = verify_plan(bad)
    assert len(problems) == 1
    assert "'train' (rows 0..69" in problems[0]
    assert "'val' (rows 60..84" in problems[0]
    assert problems[0].endswith("overlap by 10 bar(s)")


def test_verifier_catches_overlap_in_time():
    plan = chronological_split(times(range(100)), embargo_bars=5)
    bad = tampered(plan, 0, end=plan.segments[1].start + MINUTE)  # rows disjoint, times not
    assert [p for p in verify_plan(bad) if "overlap in time" in p] == [
        f"'train' (rows 0..69, {T0.isoformat()} to {(T0 + 76 * MINUTE).isoformat()}) and 'val' (rows 75..84, "
        f"{(T0 + 75 * MINUTE).isoformat()} to {(T0 + 85 * MINUTE).isoformat()}) overlap in time"
    ]


def test_verifier_catches_wrong_order():
    plan = chronological_split(times(range(100)), embargo_bars=5)
    train, val, test = plan.segments
    problems = verify_plan(plan.model_copy(update={"segments": [train, test, val]}))
    assert len(problems) == 1
    assert problems[0].startswith("'val' (rows 75..84")
    assert "comes before 'test' (rows 90..99" in problems[0]


def test_verifier_catches_inconsistent_segments():
    plan = chronological_split(times(range(100)), embargo_bars=5)
    problems = verify_plan(tampered(plan, 2, rows=9, last_row=100))
    assert [p.split(") ", 1)[1] for p in problems] == [
        "says rows=9 but spans 11 rows",
        "lies outside the dataset's 100 rows",
    ]
    empty = verify_plan(tampered(plan, 2, rows=0, first_row=90, last_row=89))
    assert any(p.startswith("'test' (rows 90..89") and p.endswith("is empty (rows=0)") for p in empty)


def test_verifier_checks_each_fold_and_the_test_windows():
    plan = walk_forward(times(range(100)), n_folds=3, test_bars=10, val_bars=5)  # no embargo
    problems = verify_plan(plan, horizon_bars=1)
    assert len(problems) == 6  # train -> val and val -> test in each fold; train -> test is 5 bars apart
    assert problems[0].startswith("'fold 0 train' leaks into 'fold 0 val': 0 bar(s)")
    assert problems[5].startswith("'fold 2 val' leaks into 'fold 2 test': 0 bar(s)")

    good = walk_forward(times(range(100)), n_folds=3, test_bars=10, embargo_bars=3)
    folds = list(good.folds)
    test = folds[1].test
    folds[1] = folds[1].model_copy(update={"test": test.model_copy(update={"first_row": 75, "rows": 15})})
    problems = verify_plan(good.model_copy(update={"folds": folds}), warmup_bars=2)
    assert any(p.startswith("'fold 1 train' (rows 0..76") and "overlap by 2 bar(s)" in p for p in problems)
    assert any(
        p.startswith("'fold 0 test' (rows 70..79") and "'fold 1 test' (rows 75..89" in p and "overlap by 5" in p
        for p in problems
    )


def test_verifier_rejects_negative_counts():
    with pytest.raises(DataError) as info:
        verify_plan(chronological_split(times(range(100))), warmup_bars=-1)
    assert info.value.column == "warmup_bars"


# ---------------------------------------------------------------- serialisation and the store


def test_plan_round_trips_through_json():
    for plan in (
        chronological_split(times(range(100)), embargo_bars=3),
        walk_forward(times(range(100)), n_folds=2, test_bars=10, val_bars=5, embargo_bars=1),
    ):
        text = plan.model_dump_json()
        assert SplitPlan.model_validate_json(text) == plan
        assert '"start":"2024-01-01T00:' in text


def test_plan_layout_is_validated():
    segment = chronological_split(times(range(10))).segments[0]
    with pytest.raises(ValueError, match="chronological plan has segments"):
        SplitPlan(kind="chronological", embargo_bars=0, rows=10)
    with pytest.raises(ValueError, match="walk-forward plan has folds"):
        SplitPlan(
            kind="walk_forward",
            embargo_bars=0,
            rows=10,
            segments=[segment],
            folds=[Fold(index=0, train=segment, test=segment)],
        )


def test_split_dataset_segments_load_back_exactly(tmp_path):
    store = Store(tmp_path)
    ts = gappy_hours()
    bars = conform(pl.DataFrame({"ts": ts, "open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0, "volume": 0.0}))
    manifest = store.write("ETHUSDT", "1h", bars).manifest
    plan = split_dataset(
        store,
        "ETHUSDT",
        "1h",
        partial(chronological_split_by_date, val_start="2024-01-01T06:00Z", test_start="2024-01-01T13:00Z"),
    )
    assert plan.dataset == f"ETHUSDT/1h@{manifest.content_hash}"
    assert plan.rows == 12
    for segment in plan.segments:
        loaded = store.load("ETHUSDT", "1h", segment.start, segment.end)["ts"]
        assert loaded.to_list() == ts[segment.first_row : segment.last_row + 1].to_list()


def _holed(before: int, hole: int, after: int) -> pl.Series:
    """``before`` 1m bars, ``hole`` missing ones, then ``after`` bars."""
    minutes = np.concatenate([np.arange(before), before + hole + np.arange(after)])
    return pl.Series("ts", minutes * 60_000).cast(pl.Datetime("ms", "UTC"))


def test_segments_report_the_gaps_inside_them() -> None:
    plan = chronological_split(_holed(700, 100, 300), train=0.7, val=0.0, test=0.3)
    train, test = plan.segments
    assert (train.gaps, train.missing_bars, train.coverage) == (0, 0, 1.0) and train.gap_summary() == "no gap"
    plan = chronological_split(_holed(800, 100, 200), train=0.7, val=0.0, test=0.3)
    test = plan.segments[1]
    assert (test.gaps, test.missing_bars, test.longest_gap) == (1, 100, 100)
    assert test.longest_gap_start is not None and test.longest_gap_start.isoformat() == "1970-01-01T13:20:00+00:00"
    assert test.coverage == pytest.approx(300 / 400) and verify_plan(plan, horizon_bars=0) == []
    assert SplitPlan.model_validate_json(plan.model_dump_json()) == plan


def test_a_scored_segment_mostly_hole_is_refused_naming_fold_and_segment() -> None:
    ts = _holed(800, 10_000, 400)
    plan = walk_forward(ts, n_folds=2, test_bars=300)  # fold 0's test straddles the hole, fold 1's does not
    assert plan.folds[0].train.coverage == 1.0 and plan.folds[1].train.coverage < 0.5  # a train window is reported
    problems = verify_plan(plan, horizon_bars=0)
    assert len(problems) == 1
    assert (
        problems[0].startswith("'fold 0 test' (rows 600..899")
        and "is mostly hole: 1 gap(s), 10,000 missing" in problems[0]
    )
    with pytest.raises(DataError, match=r"'fold 0 test'.*mostly hole"):
        check_plan(plan, horizon_bars=0)
    assert verify_plan(plan, horizon_bars=0, min_coverage=0.0) == []
    chronological = chronological_split(ts, train=0.5, val=0.25, test=0.25)
    assert [p.split(" (")[0] for p in verify_plan(chronological, horizon_bars=0)] == ["'val'"]
