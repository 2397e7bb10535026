"""The map from config target type to probe class, and building a prober's probes from config."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping

from config.loader import LoadedConfig
from config.model import Config, ControlTarget, HttpTarget, ServiceConfig, SmtpTarget
from probe.base import CONTROL_SERVICE, Probe, ProbeContext
from probe.clock import Clock
from probe.control import ControlProbe
from probe.http import HttpProbe
from probe.smtp import SmtpProbe

Target = HttpTarget | SmtpTarget | ControlTarget


# Each entry builds a probe: ``from_config(target, *, service, context)``.
ProbeFactory = Callable[..., Probe]

# Adding a probe type: a target model in config/model.py, a probe module here, one row.
PROBES: Mapping[type[Target], ProbeFactory] = {
    HttpTarget: HttpProbe.from_config,
    SmtpTarget: SmtpProbe.from_config,
    ControlTarget: ControlProbe.from_config,
}


def build_probe(target: Target, *, service: ServiceConfig | None, context: ProbeContext) -> Probe:
    """The probe of one config target."""
    return PROBES[type(target)](target, service=service, context=context)


def probe_context(loaded: LoadedConfig, clock: Clock) -> ProbeContext:
    """A context for this config: its prober id and every secret it knows of, for redaction."""
    return ProbeContext(
        clock=clock,
        prober=loaded.config.prober.id,
        secrets=loaded.secrets,
    )


def build_probes(
    config: Config,
    context: ProbeContext,
    *,
    services: Collection[str] | None = None,
    targets: Collection[str] | None = None,
) -> list[Probe]:
    """Every probe of ``config`` (control ones under service ``_control``), optionally filtered."""
    probes: list[Probe] = []
    if services is None or CONTROL_SERVICE in services:
        probes.extend(
            build_probe(control, service=None, context=context)
            for control in config.control
            if targets is None or control.name in targets
        )
    for service in config.services:
        if services is not None and service.name not in services:
            continue
        chosen: list[Target] = [*service.api, *service.smtp]
        probes.extend(
            build_probe(target, service=service, context=context)
            for target in chosen
            if targets is None or target.name in targets
        )
    return probes
