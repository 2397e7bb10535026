"""The Recorder: what the classifier finds (verdicts, signals, failing attempts) as store batches.

The daemon and replay both feed it and call ``take()`` to get the next Batch to commit:

    recorder = Recorder.from_config(loaded, source="classifier")
    recorder.resume(store)                       # once, before the first verdict
    classifier.restore(store.classifier_state() or {})
    ...
    recorder.attempt(attempt)                    # every finished attempt
    found = classifier.advance(now)
    recorder.record(found.verdicts, found.signals, now=now)
    ...                                          # at most once a second, off the event loop:
    store.commit(recorder.take(classifier.snapshot()))

It keeps, per (service, channel), the verdict run still growing and the attempts of
seconds not yet judged (at most ``samples_per_second`` each, failures and the slowest
first); a second judged anything but ``available`` keeps its attempts as evidence.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from classifier.engine import Classifier, Finalized
from classifier.replay import IncidentTally, LineReader, ReplayIncident, ReplayResult, drive
from classifier.samples import Telling
from classifier.signals import IncidentSignal, Opened
from classifier.verdict import SecondVerdict, Verdict
from config import Catalog, Config, LoadedConfig
from config.model import CalendarConfig
from incidents.lifecycle import fold, signal_event
from incidents.model import Incident, Run
from incidents.store import Batch, HighWater, IncidentStore
from incidents.view import clock_states
from probe.attempt import Attempt, Channel
from sla.clocks import clocks_json
from sla.terms import SlaTerms, freeze_terms

# Replay commits after this many judged seconds (a day of one service is one batch).
REPLAY_BATCH_SECONDS = 86_400


class Recorder:
    """Turns classifier output into store batches; resumable from the store after a restart."""

    def __init__(
        self,
        config: Config,
        catalog: Catalog,
        calendars: Mapping[str, CalendarConfig],
        *,
        source: str = "classifier",
        samples_per_second: int | None = None,
    ) -> None:
        self._config = config
        self._catalog = catalog
        self._calendars = dict(calendars)
        self.source = source
        self.samples_per_second = (
            config.storage.attempts_per_second if samples_per_second is None else samples_per_second
        )
        # The run still growing per (service, channel): extended while verdict and counts repeat.
        self._runs: dict[tuple[str, str], Run] = {}
        # Runs changed since the last take(), keyed as the store upserts them.
        self._dirty: dict[tuple[str, str, int], Run] = {}
        # The last second judged per (service, channel); verdicts at or before it are
        # already in the store (a resumed replay may feed them again) and are ignored.
        self._high_water: HighWater = {}
        self._hw_dirty: HighWater = {}
        # Attempts of seconds not yet judged: (service, channel, second) → the
        # ``samples_per_second`` most telling ones (classifier/samples.py).
        self._pending: dict[tuple[str, str, int], Telling] = {}
        self._batch = Batch()

    @classmethod
    def from_config(
        cls,
        loaded: LoadedConfig,
        *,
        source: str = "classifier",
        samples_per_second: int | None = None,
    ) -> Recorder:
        """A recorder for a loaded config (its services, catalog and calendars)."""
        return cls(
            loaded.config,
            loaded.catalog,
            loaded.calendars(),
            source=source,
            samples_per_second=samples_per_second,
        )

    def resume(self, store: IncidentStore) -> None:
        """Continue from what the store holds: its growing runs and high-water marks."""
        self._high_water = store.high_water()
        for run in store.last_runs():
            key = (run.service, run.channel)
            if self._high_water.get(key) == run.last:
                self._runs[key] = run

    def reconfigure(self, loaded: LoadedConfig) -> None:
        """Record by a reloaded config from now on, keeping everything not yet written.

        Growing runs, high-water marks, held attempts and writes not yet taken stay, so a
        reload loses no second and breaks no run; the new config's terms and sample cap
        apply from now on (held attempts keep the old cap until their second is judged).
        """
        self._config = loaded.config
        self._catalog = loaded.catalog
        self._calendars = loaded.calendars()
        self.samples_per_second = loaded.config.storage.attempts_per_second

    def attempt(self, attempt: Attempt) -> None:
        """Hold a finished attempt until its second is judged (control attempts are not kept)."""
        if attempt.channel is Channel.CONTROL or self.samples_per_second <= 0:
            return
        key = (attempt.service, str(attempt.channel), attempt.second)
        if self._high_water.get(key[:2], -math.inf) >= key[2]:
            return
        held = self._pending.get(key)
        if held is None:
            held = self._pending[key] = Telling(self.samples_per_second)
        held.add(attempt)

    def verdict(self, verdict: SecondVerdict) -> None:
        """Extend or start the channel's run; keep the second's attempts unless it was available."""
        channel_key = (verdict.service, verdict.channel)
        if self._high_water.get(channel_key, -math.inf) >= verdict.second:
            return
        held = self._pending.pop((verdict.service, verdict.channel, verdict.second), None)
        if held and verdict.verdict is not Verdict.AVAILABLE:
            self._batch.samples.extend(held.in_time_order())
        run = self._runs.get(channel_key)
        if (
            run is not None
            and run.last + 1 == verdict.second
            and run.verdict == verdict.verdict
            and run.counts == verdict.counts
            and run.set_aside == verdict.set_aside
            and run.traffic == verdict.traffic
        ):
            run = Run(
                run.service,
                run.channel,
                run.verdict,
                run.first,
                verdict.last,
                run.counts,
                run.set_aside,
                run.traffic,
            )
        else:
            run = Run(
                verdict.service,
                verdict.channel,
                str(verdict.verdict),
                verdict.second,
                verdict.last,
                tuple(verdict.counts),
                verdict.set_aside,
                tuple(verdict.traffic),
            )
        self._runs[channel_key] = run
        self._dirty[(run.service, run.channel, run.first)] = run
        self._high_water[channel_key] = verdict.last
        self._hw_dirty[channel_key] = verdict.last

    def signal(self, signal: IncidentSignal, *, now: float | None = None) -> None:
        """Record a classifier signal as an incident event (``now``: when it is recorded)."""
        # Only ``opened`` carries the terms; later events find them in the store.
        terms = SlaTerms()
        if isinstance(signal, Opened):
            terms = freeze_terms(
                self._config.service(signal.service),
                self._catalog,
                self._calendars,
                at=signal.started_at,
            )
        self._batch.events.append(signal_event(signal, terms, source=self.source, recorded_at=now))

    def record(
        self,
        verdicts: Iterable[SecondVerdict],
        signals: Iterable[IncidentSignal],
        *,
        now: float | None = None,
    ) -> None:
        """Record what one ``Classifier.advance`` finalized: its verdicts, then its signals."""
        for verdict in verdicts:
            self.verdict(verdict)
        for signal in signals:
            self.signal(signal, now=now)

    def take(self, classifier_state: Mapping[str, Any] | None = None) -> Batch:
        """The writes pending since the last call, with the classifier snapshot they match."""
        batch = self._batch
        batch.runs = list(self._dirty.values())
        batch.high_water = dict(self._hw_dirty)
        batch.classifier_state = classifier_state
        self._batch = Batch()
        self._dirty.clear()
        self._hw_dirty.clear()
        # Attempts of seconds already judged (their verdict came and went, or they came
        # too late for the classifier) can never be needed.
        stale = [k for k in self._pending if self._high_water.get(k[:2], -math.inf) >= k[2]]
        for key in stale:
            del self._pending[key]
        return batch


def replay_into_store(
    chunks: Iterable[bytes],
    loaded: LoadedConfig,
    store: IncidentStore,
    *,
    horizon: int,
    samples_per_second: int | None = None,
) -> ReplayResult:
    """Replay an attempt log (chunks of whole lines) into ``store``, resuming where it stopped.

    The result is what ``classifier.replay.replay`` reports, for the seconds judged by
    this run. Events are stamped as recorded at their detection time (``source`` replay),
    so replaying a log gives the same store every time; seconds the store already holds
    (a log replayed again, or one that continues an earlier one) are skipped.
    ReplayError names the line of a malformed attempt.
    """
    classifier = Classifier.from_config(loaded.config, loaded.catalog, horizon=horizon)
    state = store.classifier_state()
    if state is not None:
        classifier.restore(state)
    recorder = Recorder.from_config(loaded, source="replay", samples_per_second=samples_per_second)
    recorder.resume(store)
    # After a restore the classifier would take an older second as the start of a new
    # span; seconds before the snapshot's next one are already in the store.
    resume_from = None if state is None else state.get("next_second")

    def known(incident_id: str) -> ReplayIncident | None:
        # An incident opened by an earlier replay into this store: report it as stored.
        stored = store.get(incident_id)
        return None if stored is None else _as_replay_incident(stored)

    incidents = IncidentTally(known)
    attempts = 0
    since_commit = 0

    def add(second: int, attempt: Attempt) -> None:
        nonlocal attempts
        if resume_from is not None and second < resume_from:
            return
        classifier.add(attempt)
        attempts += 1
        recorder.attempt(attempt)

    def found(out: Finalized) -> None:
        nonlocal since_commit
        recorder.record(out.verdicts, out.signals)
        for signal in out.signals:
            incidents.take(signal)
        since_commit += len(out.verdicts)
        if since_commit >= REPLAY_BATCH_SECONDS:
            store.commit(recorder.take(classifier.snapshot()))
            since_commit = 0

    drive(LineReader(classifier.check).attempts(chunks), add, classifier, found)
    store.commit(recorder.take(classifier.snapshot()))
    return ReplayResult.of(classifier, incidents.found(), attempts)


def replay_clocks(
    store: IncidentStore, incidents: Iterable[ReplayIncident], now: float
) -> dict[str, dict[str, Any]]:
    """Each replayed incident's SLA clocks as of ``now`` (the end of the log), as JSON."""
    out: dict[str, dict[str, Any]] = {}
    for replayed in incidents:
        events = store.events(replayed.id)
        incident = fold(events)
        if incident is not None:
            states, _ = clock_states(incident, events, now)
            out[replayed.id] = clocks_json(states)
    return out


def _as_replay_incident(incident: Incident) -> ReplayIncident:
    return ReplayIncident(
        id=incident.id,
        service=incident.service,
        severity=incident.severity,
        provider_severity=incident.provider_severity,
        started_at=incident.started_at,
        detected_at=incident.detected_at,
        restored_at=incident.restored_at,
        severity_changes=[
            (int(c.at), c.from_severity, c.to_severity) for c in incident.severity_changes
        ],
        reopened_at=list(incident.reopened_at),
        channels=set(incident.channels),
    )
