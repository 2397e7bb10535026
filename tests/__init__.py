"""The slawatch test suite: one folder per concern, shared helpers in tests.support."""
