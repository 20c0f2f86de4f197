"""Ids are UUIDs (version 7): unique across workstations, and in the order they were made."""

from __future__ import annotations

import time
import uuid

from hitl_desktop.core.types import new_id


def test_ids_are_version_7_uuids_with_the_time_they_were_made():
    before = time.time_ns() // 1_000_000
    ids = [new_id() for _ in range(20_000)]
    after = time.time_ns() // 1_000_000
    assert len(set(ids)) == len(ids)
    for s in ids[:: 997]:
        u = uuid.UUID(s)
        assert str(u) == s and u.version == 7 and u.variant == uuid.RFC_4122
        assert before <= u.int >> 80 <= after


def test_ids_made_one_after_another_sort_in_that_order():
    ids = []
    for _ in range(200):
        ids.append(new_id())
        time.sleep(0.0001)  # more than the 1/4096 ms the sub-millisecond field tells apart
    assert ids == sorted(ids)


def test_now_iso_is_the_isoformat_of_now():
    from datetime import datetime, timezone

    from hitl_desktop.core.types import now_iso

    for _ in range(2000):
        before = datetime.now(timezone.utc)
        got = now_iso()
        after = datetime.now(timezone.utc)
        parsed = datetime.fromisoformat(got)
        assert got == parsed.isoformat(timespec="microseconds") and before <= parsed <= after
