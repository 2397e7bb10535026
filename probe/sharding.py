"""Which members of a fleet's group probe a target: rendezvous (highest random weight) hashing.

Every group probes every target; inside a group, each target is probed by the
``replicas`` members with the highest weight ``sha256(target | member)``. A change of
membership moves only the targets whose top members changed (about 1/N of them). Members
agree on the member list and the second it takes effect because both are data, written
by the finalizer (``assignments``); this module only computes owners from them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


def target_key(service: str, channel: str, target: str) -> str:
    """The name a target is hashed by: the same on every member (they share target names)."""
    return f"{service}/{channel}/{target}"


def owners(key: str, members: Iterable[str], replicas: int) -> tuple[str, ...]:
    """The ``replicas`` members (fewer if the group is smaller) that probe ``key``."""
    ranked = sorted(
        members,
        key=lambda member: (hashlib.sha256(f"{key}|{member}".encode()).digest(), member),
        reverse=True,
    )
    return tuple(ranked[:replicas])


@dataclass(frozen=True, slots=True)
class Assignment:
    """A group's members from ``effective_second`` on, and how many probe each target."""

    version: int
    group: str
    effective_second: int
    members: tuple[str, ...]
    replicas: int

    def owns(self, member: str, key: str) -> bool:
        """Whether ``member`` probes the target ``key`` under this assignment."""
        return member in owners(key, self.members, self.replicas)


def current(assignments: Sequence[Assignment], second: int) -> Assignment | None:
    """The assignment in force in ``second``: the newest whose effective second has come."""
    due = [a for a in assignments if a.effective_second <= second]
    return max(due, key=lambda a: a.version, default=None)
