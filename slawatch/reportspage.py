"""The reports page (``/reports``): availability by month per service against its commitment.

Rendered from :func:`slawatch.pagedata.reports_document`: the figures are those of
:mod:`incidents.report`, so a month here says what ``slawatch report --month`` says, and
the CSV download is the same rows (``/api/v1/reports?format=csv``).
"""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from typing import Any

from config.timetext import format_time
from slawatch.pagekit import esc, incident_table, layout, pager


def _share(value: Any, text: Any, met: Any) -> str:
    state = {True: "met", False: "breached", None: ""}[met]
    return (
        f'<span class="{state}" data-availability="{"" if value is None else value}">'
        f"{esc(text)}</span>"
    )


def _overview(doc: Mapping[str, Any]) -> str:
    months = doc["months"]
    head = "".join(
        f'<th scope="col"><a href="/reports?month={escape(m)}">{escape(m)}</a></th>' for m in months
    )
    rows = []
    for line in doc["overview"]:
        commitment = line.get("commitment")
        cells = "".join(
            f'<td data-month="{escape(m)}">'
            f"{_share(c['availability'], c['availability_text'], c['met'])}</td>"
            for m in months
            for c in (line["months"][m],)
        )
        rows.append(
            f'<tr data-service="{esc(line["service"])}"><th scope="row">{esc(line["service"])}</th>'
            f"<td>{'—' if commitment is None else f'{float(commitment):g} %'}</td>{cells}</tr>"
        )
    body = "".join(rows) or f'<tr><td colspan="{len(months) + 2}">no services</td></tr>'
    return (
        '<div class="scroll"><table id="overview"><thead><tr><th scope="col">service</th>'
        f'<th scope="col">commitment</th>{head}</tr></thead><tbody>{body}</tbody></table></div>'
    )


def _month(doc: Mapping[str, Any]) -> str:
    rows = []
    for report in doc["reports"]:
        combined = report["combined"]
        commitment = report.get("commitment")
        goal = budget = remaining = "—"
        met = None
        if commitment is not None:
            goal = f"{float(commitment['percent']):g} %"
            met = commitment["met"]
            budget = esc(commitment["budget_seconds"])
            remaining = esc(commitment["remaining_seconds"])
        name = esc(report["service"])
        rows.append(
            f'<tr data-service="{name}"><th scope="row">{name}</th>'
            f"<td>{_share(combined['availability'], report['availability_text'], met)}</td>"
            f"<td>{goal}</td><td>{esc({True: 'met', False: 'NOT met', None: '—'}[met])}</td>"
            f"<td>{int(combined['observed'])}</td><td>{int(combined['unavailable'])}</td>"
            f'<td class="wide">{budget}</td><td>{remaining}</td></tr>'
        )
    body = "".join(rows) or '<tr><td colspan="8">no services</td></tr>'
    return (
        '<div class="scroll"><table id="month"><thead><tr><th scope="col">service</th>'
        '<th scope="col">availability</th><th scope="col">commitment</th><th scope="col">met</th>'
        '<th scope="col">judged s</th><th scope="col">unavailable s</th>'
        '<th scope="col" class="wide">budget s</th><th scope="col">budget left s</th></tr>'
        f"</thead><tbody>{body}</tbody></table></div>"
    )


def render_reports_page(doc: Mapping[str, Any], *, now: float, version: str) -> str:
    """The HTML of the reports page; every string from config or the store is escaped."""
    month = str(doc["month"])
    csv = f"/api/v1/reports?month={escape(month)}&amp;format=csv"
    link = f"/reports?month={month}&page={{page}}"
    content = (
        '<section aria-labelledby="h-months"><h2 id="h-months">Availability by month</h2>'
        '<p class="small muted">By the contract: (judged - unavailable) / judged seconds, a '
        "partial second counting as available; each month in UTC. Choose a month for its "
        f"figures and incidents.</p>{_overview(doc)}</section>"
        f'<section aria-labelledby="h-month"><h2 id="h-month">{escape(month)}</h2>'
        f'<p><a id="csv" href="{csv}" download="slawatch-{escape(month)}.csv">Download the '
        f"month as CSV</a> · the same figures as <code>slawatch report --month {escape(month)}"
        f"</code></p>{_month(doc)}"
        f"<h3>Incidents of {escape(month)} ({int(doc['incidents_total'])})</h3>"
        f"{pager(int(doc['page']), int(doc['pages']), link)}"
        f"{incident_table('month-incidents', doc['incidents'], now)}</section>"
    )
    return layout(
        f"slawatch reports {month}",
        content,
        version=version,
        as_of=format_time(now, 0),
        attrs={"data-page": "reports"},
    )
