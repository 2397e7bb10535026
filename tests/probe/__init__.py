"""Probe tests against real loopback servers."""
