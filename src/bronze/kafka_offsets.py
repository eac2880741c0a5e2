"""Kafka offsets: where a table stands in its topics, and the ranges a run reads from there (no I/O).

A table's position is, per topic, the topic's id and the next offset to land per partition. It lands with the
rows: each unit's cursor carries its partition's position after it (``value``), and the manifest's position
(rebuilt from the ledger if need be) is the furthest landed offset per partition, whatever order units landed
in. A run plans from that position and what the broker says when the run starts (earliest and latest offset
per partition, the topic's id):

- a partition bronze has not seen starts at offset 0 (what retention deleted of it is a gap); a topic seen for
  the first time at the table's ``starting_offsets``;
- a position past the latest offset, a partition that is gone, or another topic id means the topic was
  deleted and created again: an error, never a silent skip;
- a position before the earliest offset means records were deleted (retention) before they landed:
  ``on_data_loss: fail`` is an error, ``skip`` reads from the earliest and reports the lost range;
- ``max_offsets_per_run`` caps the offsets read, shared among partitions by their backlog;
- a topic first seen under ``starting_offsets: latest`` gets empty ranges: they land its starting position.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from bronze.errors import SourceError
from bronze.units import cursor_value

OFFSET_COLUMN = "offset"


class OffsetsError(SourceError):
    """The landed offsets and the broker disagree in a way that would lose or double records."""


@dataclass(frozen=True)
class TopicState:
    """What the broker says of a topic when the run starts: its id and (earliest, latest) per partition."""

    topic_id: str | None
    partitions: Mapping[int, tuple[int, int]]


@dataclass(frozen=True)
class TopicPosition:
    topic_id: str | None
    offsets: Mapping[int, int] = field(default_factory=dict)


Positions = Mapping[str, TopicPosition]


@dataclass(frozen=True)
class OffsetRange:
    """Offsets ``[start, end)`` of one partition this run lands; ``read_from`` > ``start`` where the records
    before it were lost to retention (``on_data_loss: skip``)."""

    topic: str
    partition: int
    start: int
    read_from: int
    end: int

    @property
    def lost(self) -> tuple[int, int] | None:
        return (self.start, self.read_from) if self.read_from > self.start else None


@dataclass(frozen=True)
class OffsetPlan:
    ranges: tuple[OffsetRange, ...]
    after: Positions


def positions_to_json(positions: Positions) -> str:
    return json.dumps(
        {
            t: {"id": p.topic_id, "offsets": {str(k): v for k, v in sorted(p.offsets.items())}}
            for t, p in sorted(positions.items())
        },
        sort_keys=True,
    )


def positions_from_json(text: str | None) -> dict[str, TopicPosition]:
    if not text:
        return {}
    raw = json.loads(text)
    return {t: TopicPosition(p.get("id"), {int(k): int(v) for k, v in p["offsets"].items()}) for t, p in raw.items()}


def range_cursor(r: OffsetRange, topic_id: str | None) -> str:
    """A unit's cursor: its partition's range and, as ``value``, that partition's position once it landed (only
    its own: a batch may land a part of what it planned, and another driver the rest)."""
    out: dict[str, object] = {
        "column": OFFSET_COLUMN,
        "topic": r.topic,
        "partition": r.partition,
        "from": r.start,
        "to": r.end,
        "value": positions_to_json({r.topic: TopicPosition(topic_id, {r.partition: r.end})}),
    }
    if r.lost:
        out["lost"] = list(r.lost)
    return json.dumps(out)


def range_from_cursor(cursor: str) -> OffsetRange:
    """The range a unit's cursor (:func:`range_cursor`) names."""
    c = json.loads(cursor)
    start = int(c["from"])
    read_from = int(c["lost"][1]) if c.get("lost") else start
    return OffsetRange(c["topic"], int(c["partition"]), start, read_from, int(c["to"]))


def is_offsets_cursor(cursor: str | None) -> bool:
    return bool(cursor) and json.loads(cursor or "{}").get("column") == OFFSET_COLUMN


def merged_positions(current: str | None, cursors: list[str]) -> str:
    """The table's position from its landed units' cursors (and the position so far): per partition the
    furthest landed offset. Landed ranges never overlap, so the order they are seen in does not matter."""
    out = positions_from_json(cursor_value(current))
    for cursor in cursors:
        for topic, pos in positions_from_json(cursor_value(cursor)).items():
            seen = out.get(topic)
            offsets = dict(seen.offsets) if seen else {}
            for p, offset in pos.offsets.items():
                offsets[p] = max(offset, offsets.get(p, offset))
            out[topic] = TopicPosition(pos.topic_id or (seen.topic_id if seen else None), offsets)
    return batch_cursor(out)


def batch_cursor(after: Positions) -> str:
    return json.dumps({"column": OFFSET_COLUMN, "value": positions_to_json(after)})


def _check_same_topic(topic: str, landed: TopicPosition, state: TopicState, where: str) -> None:
    if landed.topic_id and state.topic_id and landed.topic_id != state.topic_id:
        raise OffsetsError(
            f"{where}: expected topic {topic!r} with id {landed.topic_id} (its offsets landed so far), found id "
            f"{state.topic_id}: the topic was deleted and created again; nothing read (move or reset the table)"
        )
    gone = sorted(set(landed.offsets) - set(state.partitions))
    if gone:
        raise OffsetsError(
            f"{where}: expected partitions {gone} of topic {topic!r} (offsets landed), found only "
            f"{sorted(state.partitions)}: the topic was deleted and created again; nothing read"
        )
    for p, pos in sorted(landed.offsets.items()):
        latest = state.partitions[p][1]
        if pos > latest:
            raise OffsetsError(
                f"{where}: expected {topic}/{p} to reach offset {pos} (landed so far), found its latest offset "
                f"{latest}: offsets went backwards (the topic was recreated or truncated); nothing read"
            )


def _start(p: int, landed: TopicPosition | None, earliest: int, latest: int, starting: str) -> int:
    if landed is None:  # a topic seen for the first time
        return latest if starting == "latest" else earliest
    # A new partition of a known topic: all of it, from offset 0 (what retention took is a gap, said so).
    return landed.offsets.get(p, 0)


def plan_offsets(
    landed: Positions,
    broker: Mapping[str, TopicState],
    *,
    starting: str = "earliest",
    on_data_loss: str = "fail",
    max_offsets: int | None = None,
    where: str = "kafka",
) -> OffsetPlan:
    """The ranges to land after ``landed``, given the broker's state at the run's start, and the position
    after them. Topics bronze landed that the broker no longer lists keep their position."""
    ranges: list[OffsetRange] = []
    after = {t: TopicPosition(p.topic_id, dict(p.offsets)) for t, p in landed.items()}
    for topic, state in sorted(broker.items()):
        seen = landed.get(topic)
        if seen is not None:
            _check_same_topic(topic, seen, state, where)
        starts: dict[int, int] = {}
        for p, (earliest, latest) in sorted(state.partitions.items()):
            start = starts[p] = _start(p, seen, earliest, latest, starting)
            read_from = max(start, earliest)
            if read_from > start and on_data_loss == "fail":
                raise OffsetsError(
                    f"{where}: expected {topic}/{p} to still hold offset {start} (the next to land), found its "
                    f"earliest offset {earliest}: {earliest - start} records were deleted (retention) before they "
                    "landed; nothing read (on_data_loss: skip lands what exists and reports the gap)"
                )
            if latest > start or (seen is None and starting == "latest"):
                # A topic first seen under ``latest`` gets an empty range too: its starting position must land
                # in the ledger, or a run after a lost manifest would start at a later ``latest`` and skip.
                ranges.append(OffsetRange(topic, p, start, read_from, latest))
        known = seen.offsets if seen else {}
        after[topic] = TopicPosition(state.topic_id or (seen.topic_id if seen else None), {**known, **starts})
    if max_offsets is not None:
        ranges = _capped(ranges, max_offsets)
    for r in ranges:
        after[r.topic].offsets[r.partition] = r.end  # type: ignore[index]
    return OffsetPlan(tuple(ranges), after)


def _capped(ranges: list[OffsetRange], limit: int) -> list[OffsetRange]:
    """At most ``limit`` offsets read in all, each partition's share in proportion to its backlog (the
    remainder to the largest backlogs); a range whose records were lost still moves past the gap."""
    backlog = [r.end - r.read_from for r in ranges]
    total = sum(backlog)
    if total <= limit:
        return ranges
    shares = [limit * b // total for b in backlog]
    for i in sorted(range(len(ranges)), key=lambda i: -backlog[i])[: limit - sum(shares)]:
        shares[i] += 1
    out = []
    for r, share in zip(ranges, shares, strict=True):
        if share > 0 or r.lost or r.start == r.end:
            out.append(OffsetRange(r.topic, r.partition, r.start, r.read_from, r.read_from + share))
    return out
