"""Fault matrices: loopback servers and network namespaces."""
