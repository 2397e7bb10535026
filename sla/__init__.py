"""Contract time: business calendars, business-time arithmetic, SLA policies and clocks."""
