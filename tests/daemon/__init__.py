"""The daemon in process and as a subprocess, end to end."""
