"""Incidents: SLA calendars and clocks, lifecycle, store, evidence, reports (pure domain)."""
