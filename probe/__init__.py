"""Probes: the Attempt record, the outcome taxonomy, the scheduler and the per-protocol probers."""

from probe.attempt import Attempt, AttemptFormatError, Channel, Outcome, Source, attempt_from_json

__all__ = ["Attempt", "AttemptFormatError", "Channel", "Outcome", "Source", "attempt_from_json"]
