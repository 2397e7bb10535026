"""Helpers that two or more test folders (or the benchmarks) share: one home for each.

=============== ==============================================================================
module          what it holds
=============== ==============================================================================
ci_tools        external tools and capabilities: skip on a laptop without them, fail under CI
cli             ``slawatch ARGS`` run in a subprocess, as a user would
configs         a validated config from YAML text or a mapping, with a fake environment
daemon          ``slawatch run`` as a subprocess: start, wait ready, JSON API, log, SIGTERM
loop_thread     an event loop in a background thread, for servers a subprocess talks to
paths           ``ROOT``, the checkout
provider        the simulated provider on such a thread, and a daemon config probing it
receiver        a recording HTTP receiver (webhook, Slack, PagerDuty, Alertmanager end)
servers         ``free_port``, the raw TCP server with scripted misbehaving peers, apps
timeline        the one timeline notation: one character a second, and its table
=============== ==============================================================================

Fixtures that many folders use (``require_tool``, ``store``) are in ``tests/conftest.py``;
helpers that one folder uses stay beside its tests.
"""
