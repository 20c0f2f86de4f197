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


def _random_bits(s: str) -> int:
    return uuid.UUID(s).int & ((1 << 62) - 1)


def test_seeding_the_global_random_generator_does_not_repeat_ids():
    import random

    random.seed(1234)  # as a library setting seeds for generation does
    first = [_random_bits(new_id()) for _ in range(50)]
    random.seed(1234)
    again = [_random_bits(new_id()) for _ in range(50)]
    assert not set(first) & set(again)


def test_a_forked_process_draws_other_ids_than_its_parent():
    import os

    import pytest

    if not hasattr(os, "fork"):
        pytest.skip("no fork on this platform")
    new_id()  # the generator's state is made before the fork
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ids, to the parent
        os.close(read)
        os.write(write, ",".join(new_id() for _ in range(20)).encode())
        os._exit(0)
    os.close(write)
    mine = [new_id() for _ in range(20)]
    with os.fdopen(read) as f:
        theirs = f.read().split(",")
    os.waitpid(pid, 0)
    assert len(theirs) == 20
    assert not {_random_bits(s) for s in mine} & {_random_bits(s) for s in theirs}
