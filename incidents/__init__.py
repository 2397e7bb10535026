"""Incidents: the incident event log, its fold, stores, recorder, evidence and reports."""
