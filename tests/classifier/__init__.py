"""Classifier tests: verdicts, signals, replay."""
