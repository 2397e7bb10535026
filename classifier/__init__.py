"""Classifier: per-second verdicts, the classification state machine, and replay (pure)."""
