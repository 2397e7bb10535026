"""Rendezvous sharding of a group's targets: stable, balanced, minimal moves, replicas."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from probe.sharding import Assignment, current, owners, target_key

KEYS = [target_key("mail", "api", f"t{i}") for i in range(400)]


def test_every_target_has_exactly_replicas_owners() -> None:
    """With 4 members, each target has 1 (or 2) distinct owners; a small group gives fewer."""
    members = ["a", "b", "c", "d"]
    assert all(len(owners(k, members, 1)) == 1 for k in KEYS)
    assert all(len(set(owners(k, members, 2))) == 2 for k in KEYS)
    assert owners(KEYS[0], ["a"], 2) == ("a",)
    assert owners(KEYS[0], [], 1) == ()


def test_the_load_is_balanced() -> None:
    """400 targets over 4 members: each gets a fair share."""
    load = Counter(owners(k, ["a", "b", "c", "d"], 1)[0] for k in KEYS)
    assert all(70 <= n <= 130 for n in load.values()), load


@settings(max_examples=30, deadline=None)
@given(st.sets(st.sampled_from("abcdefgh"), min_size=2, max_size=8), st.integers(1, 2))
def test_a_member_leaving_moves_only_its_targets(members: set[str], replicas: int) -> None:
    """When one member leaves, a target keeps every owner that is still there."""
    gone = sorted(members)[0]
    after = members - {gone}
    for key in KEYS[:100]:
        before = set(owners(key, members, replicas))
        now = set(owners(key, after, replicas))
        assert before - {gone} <= now
        assert owners(key, sorted(members, reverse=True), replicas) == owners(
            key, sorted(members), replicas
        )


@pytest.mark.parametrize(
    ("second", "version"),
    [
        pytest.param(99, None, id="before-any"),
        pytest.param(100, 1, id="first"),
        pytest.param(104, 1, id="switch-not-yet"),
        pytest.param(105, 2, id="switched"),
    ],
)
def test_the_assignment_in_force(second: int, version: int | None) -> None:
    """An assignment takes effect at its effective second, not before."""
    history = [
        Assignment(1, "eu", 100, ("a", "b"), 1),
        Assignment(2, "eu", 105, ("a",), 1),
    ]
    found = current(history, second)
    assert (found.version if found else None) == version
    if found is not None and version == 2:
        assert all(found.owns("a", k) for k in KEYS[:10])
