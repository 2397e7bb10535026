"""Incidents: SLA calendars and clocks, lifecycle, store, evidence, reports, notifications (pure domain)."""
