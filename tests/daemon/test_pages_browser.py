"""The pages in a real browser: Chromium driven by Playwright against a real `slawatch run`.

One story, in order: the status page fills with available seconds, the simulated provider
goes down and the timeline turns red without a reload, the incident appears and is
clicked; the incident page shows its clocks and evidence downloads (which verify), the form
refuses bad input and records "provider responded" with the token, which meets the
first-response clock; the provider recovers; the reports page says what `slawatch report`
says. Screenshots of the three pages at desktop and phone widths go to test-artifacts/pages.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright import sync_api as playwright_api

from slawatch.simulator import SimulatedProvider
from tests.support.ci_tools import require_tool
from tests.support.cli import run_slawatch
from tests.support.daemon import Daemon, wait_for, write_config
from tests.support.paths import ROOT
from tests.support.provider import TOKEN, TOKEN_ENV, daemon_config, provider_thread
from tests.support.servers import free_port

ARTIFACTS = ROOT / "test-artifacts" / "pages"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
# Chromium as root needs --no-sandbox; the rest keep it off a network it cannot reach.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Milliseconds a page may take to show what the daemon already knows (it polls every 3 s).
WAIT_MS = 30_000


@dataclass
class Story:
    """What the module's tests share."""

    folder: Path
    provider: SimulatedProvider
    daemon: Daemon
    page: Any
    incident: str = ""


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory, chromium_path: str) -> Iterator[Story]:
    """A daemon watching a healthy simulated provider, and a fresh Chromium on its pages."""
    folder = tmp_path_factory.mktemp("pages")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with provider_thread() as provider:
        port = free_port()
        config = daemon_config(
            provider, port, critical_after="6s", recover_after="4s", degraded_min_seconds=10
        )
        config["services"][0]["sla"]["commitment"] = 99.9
        write_config(folder, config)
        daemon = Daemon(folder, port, env=TOKEN_ENV)
        daemon.start()
        try:
            with playwright_api.sync_playwright() as driver:
                context = driver.chromium.launch_persistent_context(
                    str(folder / "profile"),
                    executable_path=chromium_path,
                    args=CHROMIUM_ARGS,
                    headless=True,
                    viewport=DESKTOP,
                    accept_downloads=True,
                )
                try:
                    page = context.pages[0] if context.pages else context.new_page()
                    page.set_default_timeout(WAIT_MS)
                    yield Story(folder, provider, daemon, page)
                finally:
                    context.close()
        finally:
            daemon.stop()


@pytest.fixture(scope="module")
def chromium_path() -> str:
    """Debian's Chromium (never a browser Playwright downloads); skipped without it outside CI."""
    return require_tool("chromium")


def _shoot(page: Any, name: str) -> None:
    """Screenshots at desktop and phone width; the phone layout must not scroll sideways."""
    page.set_viewport_size(DESKTOP)
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(ARTIFACTS / f"{name}-desktop.png"), full_page=False)
    page.set_viewport_size(PHONE)
    page.wait_for_timeout(200)
    page.evaluate("window.scrollTo(0, 0)")
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 1, f"{name}: {overflow}px wider than a phone screen"
    page.screenshot(path=str(ARTIFACTS / f"{name}-phone.png"), full_page=False)
    page.set_viewport_size(DESKTOP)


def _cells_are_labelled(page: Any) -> dict[str, int]:
    """How many timeline cells there are, and how many lack a verdict, an RFC 3339 second or a title."""
    result: dict[str, int] = page.evaluate(
        """() => {
        const cells = [...document.querySelectorAll('.tl i')];
        const rfc = /^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ$/;
        const verdicts = ['available', 'partial', 'unavailable', 'inconclusive', 'no_data'];
        return {
          cells: cells.length,
          bad: cells.filter(c => !verdicts.includes(c.dataset.verdict) || !rfc.test(c.dataset.second)
                                 || !c.title).length,
        };
    }"""
    )
    return result


def test_status_page_turns_red_without_reload(story: Story) -> None:
    """Available seconds fill the timeline; an outage shows in red and as an open incident,
    all polled in place (the page is never reloaded)."""
    page = story.page
    page.goto(story.daemon.url("/"))
    assert page.title() == "slawatch status"
    page.wait_for_selector(
        '.tl[data-channel="combined"] i[data-verdict="available"]', state="attached"
    )
    page.evaluate("window.__notReloaded = true")
    # The legend names every colour; open incidents come before the services.
    legend = page.inner_text(".legend")
    for verdict in ("available", "partial", "unavailable", "inconclusive", "no data"):
        assert verdict in legend
    assert page.evaluate(
        "document.getElementById('h-open').compareDocumentPosition("
        "document.getElementById('h-services')) & Node.DOCUMENT_POSITION_FOLLOWING"
    )
    labelled = _cells_are_labelled(page)
    assert labelled["cells"] > 0
    assert labelled["bad"] == 0
    shares = page.eval_on_selector_all(
        "[data-availability]", "nodes => nodes.map(n => n.dataset.availability)"
    )
    assert shares
    assert all(s == "" or 0 <= float(s) <= 1 for s in shares)
    assert page.inner_text("#probers").count("e2e-1") == 1

    story.provider.healthy = False
    page.wait_for_selector(
        '.tl[data-channel="combined"] i[data-verdict="unavailable"]', state="attached"
    )
    page.wait_for_selector(
        '.tl[data-channel="api"] i[data-verdict="unavailable"]', state="attached"
    )
    link = page.wait_for_selector('#open a[href^="/incidents/"]')
    story.incident = link.inner_text()
    assert page.evaluate("window.__notReloaded === true")
    month = page.get_attribute(
        'article[data-service="mail"] [data-field="month"]', "data-availability"
    )
    assert month is not None
    assert 0 < float(month) < 1
    # The open incident's clocks count down as h/m/s.
    page.wait_for_function(
        "() => /\\d+h \\d\\dm \\d\\ds/.test(document.querySelector('#open [data-deadline]').textContent)"
    )
    assert _cells_are_labelled(page)["bad"] == 0
    _shoot(page, "status")
    link.click()
    page.wait_for_url(f"**/incidents/{story.incident}")


def test_incident_page_clocks_and_evidence(story: Story, tmp_path: Path) -> None:
    """The incident page shows running clocks with UTC and local deadlines; every evidence
    download works and the JSON and CSV bundles pass `slawatch evidence verify`."""
    page = story.page
    assert page.inner_text("#incident-title") == f"Incident {story.incident}"
    assert page.inner_text('[data-fact="state"]') == "open"
    first = page.locator('#clocks tr[data-clock="first_response"]')
    assert first.get_attribute("data-state") == "running"
    cells = first.locator("td").all_inner_texts()
    assert cells[3].endswith("Z")  # the deadline in UTC
    assert "(UTC)" in cells[4] or "(Europe/London)" in cells[4]  # and in the calendar's zone
    assert page.locator(".tl i[data-verdict=unavailable]").count() > 0
    assert page.locator("#samples tbody tr").count() > 0
    formats = page.eval_on_selector_all("#downloads a", "links => links.map(a => a.dataset.format)")
    assert formats == ["json", "csv", "md", "html"]
    for fmt in formats:
        with page.expect_download() as info:
            page.click(f'#downloads a[data-format="{fmt}"]')
        saved = tmp_path / f"evidence.{fmt}"
        info.value.save_as(saved)
        text = saved.read_text()
        # The CSV is the per-second records alone; the other formats name the incident.
        assert fmt == "csv" or story.incident in text
        if fmt in ("json", "csv"):
            done = run_slawatch("evidence", "verify", str(saved), cwd=tmp_path, timeout=60)
            assert done.returncode == 0, done.stdout + done.stderr


def test_form_records_provider_responded(story: Story) -> None:
    """The form is reachable by keyboard, shows the API's error for bad input or a missing
    token, and with the token records "provider responded": the first-response clock is met."""
    page = story.page
    page.locator("body").focus()
    for _ in range(300):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement && document.activeElement.name === 'kind'"):
            break
    else:
        pytest.fail("the event form cannot be reached with the Tab key")
    page.select_option('select[name="kind"]', "provider_responded")
    page.fill('input[name="at"]', "yesterday at noon")
    page.fill('input[name="token"]', TOKEN)
    page.click('#event-form button[type="submit"]')
    error = page.wait_for_selector("#event-result.error")
    assert "400" in error.inner_text()
    assert "at:" in error.inner_text()
    page.fill('input[name="at"]', "")
    page.fill('input[name="token"]', "not-the-token")
    page.click('#event-form button[type="submit"]')
    page.wait_for_function(
        "() => document.querySelector('#event-result').textContent.includes('401')"
    )
    assert (
        page.locator('#clocks tr[data-clock="first_response"]').get_attribute("data-state")
        == "running"
    )
    page.fill('input[name="token"]', TOKEN)
    page.fill('textarea[name="note"]', "Called back by the <b>provider</b>")
    page.click('#event-form button[type="submit"]')
    page.wait_for_selector("#event-result.done")
    page.wait_for_selector('#clocks tr[data-clock="first_response"][data-state="met"]')
    page.wait_for_selector('#events li[data-kind="provider_responded"]')
    # The note is shown as text, never as markup.
    assert page.locator("#events b").count() == 0
    assert "<b>provider</b>" in page.inner_text("#events")
    api = story.daemon.json(f"/api/v1/incidents/{story.incident}")
    assert api["clocks"]["first_response"]["state"] == "met"
    _shoot(page, "incident")


def _report(story: Story, month: str, fmt: str) -> str:
    """What `slawatch report` prints for the month over the story's store."""
    done = run_slawatch(
        *("report", "--config", "slawatch.yaml", "--service", "mail"),
        *("--month", month, "--format", fmt),
        cwd=story.folder,
        env=TOKEN_ENV,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_recovery_and_reports_match_the_cli(story: Story) -> None:
    """After recovery the incident is restored; the reports page's month figure (and its CSV)
    equals `slawatch report` over the same store."""
    page = story.page
    story.provider.healthy = True
    wait_for(
        lambda: story.daemon.json(f"/api/v1/incidents/{story.incident}")["restored_at"],
        WAIT_MS / 1000,
        "the restore",
    )
    page.wait_for_function(
        "() => document.querySelector('[data-fact=\"restored_at\"]').textContent.endsWith('Z')"
    )
    # Freeze the figures: stop the daemon, then serve the same store without probes.
    assert story.daemon.stop() == 0
    config = json.loads(json.dumps(daemon_config(story.provider, story.daemon.port)))
    config["services"][0].pop("api")
    config["services"][0].pop("smtp")
    config["services"][0]["sla"]["commitment"] = 99.9
    write_config(story.folder, config)
    story.daemon.start()
    page.goto(story.daemon.url("/reports"))
    month = page.inner_text("#h-month")
    shown = page.get_attribute(
        '#month tr[data-service="mail"] [data-availability]', "data-availability"
    )
    report = json.loads(_report(story, month, "json"))
    assert shown is not None
    assert float(shown) == report["combined"]["availability"]
    assert report["combined"]["unavailable"] > 0
    text = page.inner_text('#month tr[data-service="mail"]')
    assert f"{report['combined']['availability_percent']:.6f} %" in text
    assert str(report["commitment"]["remaining_seconds"]) in text
    assert page.locator(f'#month-incidents a[href="/incidents/{story.incident}"]').count() == 1
    with page.expect_download() as info:
        page.click("#csv")
    rows = Path(info.value.path()).read_text().splitlines()
    # The download holds every service's rows; for this one they are the CLI's, byte for byte.
    assert rows[1:] == _report(story, month, "csv").splitlines()[1:]
    combined = next(r for r in rows if r.startswith("mail,") and ",combined," in r)
    assert combined.split(",")[10] == repr(report["combined"]["availability"])
    _shoot(page, "reports")
