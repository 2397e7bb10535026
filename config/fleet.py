"""What every member of a fleet must agree on, as one digest compared when a prober joins.

Members pool their attempts into one verdict per second, so they must judge by the same
rules: the same services, channels and target names, the same classifier, SLA and
outcome settings, the same sources, the same calendars, and the cluster settings that change
a verdict (``min_probers``, ``max_clock_offset``, ``replicas``). What may differ by location is left
out: a target's URL or host (regional endpoints), its headers and credentials, timeouts
and rates, the control checks, the prober's own id and group, the server and storage.
No secret feeds the digest: none of the keys it covers can hold one.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from config.model import Config, ServiceConfig


def judging_terms(config: Config) -> dict[str, Any]:
    """The part of ``config`` that all members must share, as plain JSON data."""
    return {
        "services": [_service(service) for service in config.services],
        "calendars": {
            name: calendar.model_dump(mode="json")
            for name, calendar in sorted(config.calendars.items())
        },
        "cluster": {
            "min_probers": config.cluster.min_probers,
            "max_clock_offset": config.cluster.max_clock_offset,
            "replicas": config.cluster.replicas,
        },
    }


def judging_digest(config: Config) -> str:
    """SHA-256 (hex) of :func:`judging_terms` in a canonical JSON spelling."""
    text = json.dumps(judging_terms(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _service(service: ServiceConfig) -> dict[str, Any]:
    return {
        "name": service.name,
        "environment": service.environment,
        "sla": service.sla.model_dump(mode="json"),
        "classifier": service.classifier.model_dump(mode="json"),
        "counts_as_unavailable": sorted(service.counts_as_unavailable),
        "smtp_replies": dict(sorted(service.smtp_replies.items())),
        "channels": {
            "api": sorted(target.name for target in service.api),
            "smtp": sorted(target.name for target in service.smtp),
        },
        # The sources judged and the channels traffic rules feed (lanes of a packed slice);
        # the rules' patterns may differ by location, as a target's URL may.
        "sources": sorted(service.sources),
        "traffic_channels": sorted({rule.channel for rule in service.traffic}),
    }
