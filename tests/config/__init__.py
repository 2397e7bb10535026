"""Config loader tests and the invalid-config fixtures."""
