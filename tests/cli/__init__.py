"""Command-line tests on real store files."""
