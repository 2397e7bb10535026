"""Notifications: rules derived from the incident event log, one module per channel, delivery."""
