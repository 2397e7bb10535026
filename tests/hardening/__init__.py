"""Hardening: storage faults, crashes, hostile input, security."""
