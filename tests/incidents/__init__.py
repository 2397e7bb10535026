"""Incident log, SLA time, evidence and report tests."""
