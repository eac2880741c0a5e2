"""The offset planner (no Spark, no broker): ranges after the landed position, new partitions, recreated topics,
retention gaps and the per-run cap, with the exact errors."""

from __future__ import annotations

import pytest

from bronze.kafka_offsets import (
    OffsetRange,
    OffsetsError,
    TopicPosition,
    TopicState,
    merged_positions,
    plan_offsets,
    positions_from_json,
    positions_to_json,
    range_cursor,
)
from bronze.units import cursor_value


def state(*parts: tuple[int, int], topic_id: str = "id-1") -> TopicState:
    return TopicState(topic_id, dict(enumerate(parts)))


def test_first_run_reads_every_partition_from_its_earliest_and_stands_at_the_latest() -> None:
    plan = plan_offsets({}, {"ev": state((0, 5), (2, 2), (3, 7))})
    assert plan.ranges == (OffsetRange("ev", 0, 0, 0, 5), OffsetRange("ev", 2, 3, 3, 7))
    assert plan.after == {"ev": TopicPosition("id-1", {0: 5, 1: 2, 2: 7})}
    # starting_offsets: latest reads nothing of a new topic and stands at its end.
    latest = plan_offsets({}, {"ev": state((0, 5))}, starting="latest")
    assert latest.ranges == (OffsetRange("ev", 0, 5, 5, 5),)  # empty: it lands the starting position
    assert latest.after == {"ev": TopicPosition("id-1", {0: 5})}


def test_later_runs_start_where_the_last_landed_and_a_new_partition_from_its_earliest() -> None:
    landed = {"ev": TopicPosition("id-1", {0: 5, 1: 2})}
    plan = plan_offsets(landed, {"ev": state((0, 9), (2, 2), (0, 4))}, starting="latest")
    assert plan.ranges == (OffsetRange("ev", 0, 5, 5, 9), OffsetRange("ev", 2, 0, 0, 4))
    assert plan.after == {"ev": TopicPosition("id-1", {0: 9, 1: 2, 2: 4})}
    assert positions_from_json(positions_to_json(plan.after)) == plan.after
    # Nothing new: no range, the same position; a topic the pattern no longer matches keeps its position.
    again = plan_offsets({**plan.after, "old": TopicPosition("id-9", {0: 3})}, {"ev": state((0, 9), (2, 2), (0, 4))})
    assert again.ranges == ()
    assert again.after == {"ev": TopicPosition("id-1", {0: 9, 1: 2, 2: 4}), "old": TopicPosition("id-9", {0: 3})}


def test_a_recreated_topic_is_an_error() -> None:
    landed = {"ev": TopicPosition("id-1", {0: 5, 1: 2})}
    with pytest.raises(
        OffsetsError, match=r"expected ev/0 to reach offset 5 \(landed so far\), found its latest offset 3"
    ):
        plan_offsets(landed, {"ev": state((0, 3), (0, 2))}, where="t")
    with pytest.raises(OffsetsError, match=r"t: expected topic 'ev' with id id-1 .*found id id-2"):
        plan_offsets(landed, {"ev": state((0, 30), (0, 20), topic_id="id-2")}, where="t")
    with pytest.raises(
        OffsetsError, match=r"expected partitions \[1\] of topic 'ev' \(offsets landed\), found only \[0\]"
    ):
        plan_offsets(landed, {"ev": state((0, 30))})


def test_offsets_lost_to_retention_fail_or_are_skipped_and_reported() -> None:
    landed = {"ev": TopicPosition("id-1", {0: 5, 1: 2})}
    broker = {"ev": state((8, 12), (2, 4))}
    with pytest.raises(OffsetsError, match=r"expected ev/0 to still hold offset 5 .*earliest offset 8: 3 records"):
        plan_offsets(landed, broker)
    plan = plan_offsets(landed, broker, on_data_loss="skip")
    assert plan.ranges == (OffsetRange("ev", 0, 5, 8, 12), OffsetRange("ev", 1, 2, 2, 4))
    assert plan.ranges[0].lost == (5, 8) and plan.ranges[1].lost is None
    # Everything before the latest deleted: a range with no record still moves past the gap.
    empty = plan_offsets(landed, {"ev": state((12, 12), (2, 2))}, on_data_loss="skip")
    assert empty.ranges == (OffsetRange("ev", 0, 5, 12, 12),)
    assert empty.after["ev"].offsets == {0: 12, 1: 2}


def test_max_offsets_per_run_shares_the_cap_by_backlog() -> None:
    plan = plan_offsets({}, {"ev": state((0, 90), (0, 10), (0, 0))}, max_offsets=11)
    assert plan.ranges == (OffsetRange("ev", 0, 0, 0, 10), OffsetRange("ev", 1, 0, 0, 1))
    assert plan.after["ev"].offsets == {0: 10, 1: 1, 2: 0}
    nxt = plan_offsets(plan.after, {"ev": state((0, 90), (0, 10), (0, 0))}, max_offsets=1000)
    assert nxt.ranges == (OffsetRange("ev", 0, 10, 10, 90), OffsetRange("ev", 1, 1, 1, 10))


def test_the_position_is_the_furthest_landed_offset_per_partition_in_any_order() -> None:
    a = range_cursor(OffsetRange("ev", 0, 0, 0, 5), "id-1")
    b = range_cursor(OffsetRange("ev", 1, 0, 0, 3), "id-1")
    c = range_cursor(OffsetRange("ev", 0, 5, 5, 9), "id-1")
    # A driver that landed only partition 1 of what it planned claims nothing of partition 0.
    assert positions_from_json(cursor_value(merged_positions(None, [b]))) == {"ev": TopicPosition("id-1", {1: 3})}
    want = {"ev": TopicPosition("id-1", {0: 9, 1: 3})}
    for order in ([a, b, c], [c, b, a], [b, c, a]):
        assert positions_from_json(cursor_value(merged_positions(None, order))) == want
    # Merged onto the position so far (a later unit of a partition moves it, an older one does not).
    so_far = merged_positions(None, [c])
    assert positions_from_json(cursor_value(merged_positions(so_far, [a, b]))) == want
