/* The pages' one script (inlined): live countdowns, and polling of the JSON API so the
   status and incident pages stay current without a full reload. Everything from the API
   goes into the page as text (textContent, setAttribute), never as HTML. */
(function () {
  "use strict";
  var POLL_MS = 3000;
  var body = document.body;

  function pad(n) { return (n < 10 ? "0" : "") + n; }
  function iso(epoch) { return new Date(epoch * 1000).toISOString().replace(/\.\d{3}Z$/, "Z"); }
  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) { node.setAttribute(key, attrs[key]); });
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }
  function countdown(seconds) {
    var sign = seconds < 0 ? "-" : "";
    var d = Math.abs(Math.floor(seconds));
    var h = Math.floor(d / 3600), m = Math.floor(d % 3600 / 60), s = d % 60;
    return sign + h + "h " + pad(m) + "m " + pad(s) + "s";
  }
  function tick() {
    var now = Date.now() / 1000;
    document.querySelectorAll("[data-deadline]").forEach(function (node) {
      node.textContent = countdown(parseFloat(node.getAttribute("data-deadline")) - now);
    });
  }
  function getJSON(url) {
    return fetch(url, {headers: {"Accept": "application/json"}, cache: "no-store"})
      .then(function (response) {
        if (!response.ok) { throw new Error(url + ": HTTP " + response.status); }
        return response.json();
      });
  }
  function setStamp(text) {
    var stamp = document.getElementById("as-of");
    if (stamp) { stamp.textContent = text; }
  }
  function stale(error) {
    setStamp("(not updating: " + error.message + ")");
  }

  /* Timelines: one <i> per second, one row per minute, appended as seconds become final. */
  function newRow(minute) {
    var row = el("div", {"class": "tl-row", "data-minute": String(minute)});
    row.appendChild(el("b", {}, minute % 600 === 0 ? iso(minute).slice(11, 16) : ""));
    row.appendChild(el("span"));
    return row;
  }
  function addCell(grid, second, verdict) {
    var last = grid.getAttribute("data-last");
    if (last !== null && last !== "" && second <= parseInt(last, 10)) { return; }
    var minute = second - second % 60;
    var row = grid.firstElementChild;  /* the newest minute is the top row */
    if (!row || parseInt(row.getAttribute("data-minute"), 10) !== minute) {
      row = newRow(minute);
      grid.insertBefore(row, grid.firstElementChild);
    }
    row.lastElementChild.appendChild(el("i", {
      "data-verdict": verdict, "data-second": iso(second),
      "title": iso(second).slice(11, 19) + " UTC " + verdict
    }));
    grid.setAttribute("data-last", String(second));
  }
  function appendSpans(grid, spans) {
    spans.forEach(function (span) {
      for (var s = span.first; s < span.first + span.seconds; s++) { addCell(grid, s, span.verdict); }
    });
  }
  function trim(grid, first) {
    while (grid.lastElementChild &&
           parseInt(grid.lastElementChild.getAttribute("data-minute"), 10) < first) {
      grid.removeChild(grid.lastElementChild);
    }
  }
  function lastShown(scope) {
    var least = null;
    scope.querySelectorAll(".tl[data-last]").forEach(function (grid) {
      var last = parseInt(grid.getAttribute("data-last"), 10);
      if (!isNaN(last) && (least === null || last < least)) { least = last; }
    });
    return least;
  }
  function updateTimelines(scope, timeline) {
    Object.keys(timeline.channels).forEach(function (channel) {
      var grid = scope.querySelector('.tl[data-channel="' + channel + '"]');
      if (!grid) { return; }
      appendSpans(grid, timeline.channels[channel]);
      if (timeline.window_first !== undefined) { trim(grid, timeline.window_first); }
    });
  }

  /* Clocks, as the server renders them: "name: state — due T (countdown)". */
  function clockCell(cell, clocks) {
    cell.textContent = "";
    var names = Object.keys(clocks || {});
    if (!names.length) { cell.appendChild(el("span", {"class": "muted"}, "no SLA clocks")); return; }
    names.forEach(function (name, index) {
      var clock = clocks[name];
      if (index) { cell.appendChild(el("br")); }
      cell.appendChild(document.createTextNode(name + ": "));
      cell.appendChild(el("span", {"class": clock.state}, clock.state));
      if (clock.deadline_epoch !== null && clock.state === "running") {
        cell.appendChild(document.createTextNode(" — due " + clock.deadline + " ("));
        cell.appendChild(el("span", {"data-deadline": String(Math.round(clock.deadline_epoch))},
                            countdown(clock.deadline_epoch - Date.now() / 1000)));
        cell.appendChild(document.createTextNode(")"));
      } else if (clock.deadline) {
        cell.appendChild(document.createTextNode(" — deadline " + clock.deadline));
      }
    });
  }
  function incidentRow(incident) {
    var row = el("tr", {"class": "sev" + incident.severity, "data-incident": incident.id});
    var link = el("td", {"data-label": "incident"});
    link.appendChild(el("a", {"href": "/incidents/" + encodeURIComponent(incident.id)}, incident.id));
    row.appendChild(link);
    row.appendChild(el("td", {"data-label": "service"}, incident.service));
    row.appendChild(el("td", {"data-label": "severity"}, incident.severity + " — " + incident.provider_severity));
    row.appendChild(el("td", {"data-label": "state"}, incident.state));
    row.appendChild(el("td", {"data-label": "started"}, incident.started_at || "—"));
    row.appendChild(el("td", {"class": "wide", "data-label": "restored"}, incident.restored_at || "—"));
    var clocks = el("td", {"data-label": "SLA clocks"});
    clockCell(clocks, incident.clocks);
    row.appendChild(clocks);
    return row;
  }
  function fillRows(tbody, rows, empty, columns) {
    tbody.textContent = "";
    rows.forEach(function (row) { tbody.appendChild(row); });
    if (!rows.length) { tbody.appendChild(el("tr")).appendChild(el("td", {"colspan": columns, "class": "muted"}, empty)); }
  }

  /* The status page. */
  function dayClass(day, commitment) {
    if (day.availability === null) { return "d-none"; }
    if (day.availability >= 1) { return "d-full"; }
    return commitment !== null && day.availability * 100 < commitment ? "d-missed" : "d-met";
  }
  function setFigure(node, value, text) {
    if (!node) { return; }
    node.setAttribute("data-availability", value === null ? "" : String(value));
    node.textContent = text;
  }
  function updateService(service) {
    var article = document.querySelector('article.service[data-service="' + CSS.escape(service.name) + '"]');
    if (!article) { return; }
    updateTimelines(article, service.timeline);
    Object.keys(service.channels).forEach(function (channel) {
      var node = article.querySelector('[data-last-verdict="' + channel + '"]');
      var verdict = service.channels[channel].verdict || "unknown";
      if (node) { node.textContent = verdict; node.className = verdict; }
    });
    var month = service.month;
    setFigure(article.querySelector("[data-field=month]"), month.combined.availability, month.availability_text);
    var detail = article.querySelector("[data-field=month-detail]");
    if (detail) {
      detail.textContent = "(" + month.combined.unavailable + " s unavailable of " +
        month.combined.observed + " s judged)";
    }
    var commitment = month.commitment;
    var budget = article.querySelector("[data-field=budget]");
    if (budget && commitment) {
      budget.textContent = commitment.remaining_seconds + " s of " + commitment.budget_seconds +
        " s left (used " + commitment.used_seconds + " s)";
      budget.className = commitment.remaining_seconds < 0 ? "bad" : "ok";
    }
    var bars = article.querySelectorAll(".days i");
    service.days.forEach(function (day, index) {
      var bar = bars[index];
      if (!bar) { return; }
      bar.setAttribute("data-day", day.day);
      bar.setAttribute("data-availability", day.availability === null ? "" : String(day.availability));
      bar.setAttribute("title", day.day + ": " + day.availability_text + " (" + day.unavailable +
                       " s unavailable of " + day.observed + " s observed)");
      bar.className = dayClass(day, service.commitment);
    });
    var open = article.querySelector("[data-field=open-incident]");
    if (open) {
      open.textContent = "";
      if (service.open_incident) {
        open.appendChild(document.createTextNode("open incident: "));
        open.appendChild(el("a", {"href": "/incidents/" + encodeURIComponent(service.open_incident)},
                            service.open_incident));
      }
    }
  }
  function proberRow(prober) {
    var row = el("tr", {"data-prober": prober.id});
    row.appendChild(el("td", {}, prober.id + (prober.this_instance ? " (this instance)" : "")));
    row.appendChild(el("td", {"class": prober.healthy ? "ok" : "bad"}, prober.healthy ? "healthy" : "unhealthy"));
    var checks = el("td");
    prober.checks.forEach(function (check, index) {
      if (index) { checks.appendChild(el("br")); }
      checks.appendChild(el("span", {"class": check.ok ? "ok" : "bad"}, check.ok ? "ok" : "failing"));
      checks.appendChild(document.createTextNode(" " + check.name + ": " + check.detail));
    });
    prober.misconfigured.forEach(function (item) {
      checks.appendChild(el("br"));
      checks.appendChild(document.createTextNode(item.service + "/" + item.target + ": " + item.detail));
    });
    row.appendChild(checks);
    return row;
  }
  function pollStatus() {
    var url = body.getAttribute("data-poll");
    var since = lastShown(document);
    getJSON(url + (since === null ? "" : "&since=" + since)).then(function (status) {
      setStamp(status.as_of);
      status.services.forEach(updateService);
      var open = document.querySelector("#open tbody");
      if (open) { fillRows(open, status.open_incidents.map(incidentRow), "none", 7); }
      var probers = document.querySelector("#probers tbody");
      if (probers) { fillRows(probers, status.probers.map(proberRow), "none", 3); }
      tick();
    }).catch(stale);
  }

  /* The incident page. */
  function renderIncident(incident) {
    document.querySelectorAll("[data-fact]").forEach(function (node) {
      var value = incident[node.getAttribute("data-fact")];
      node.textContent = value === null || value === undefined || value === "" ? "—" : String(value);
    });
    var clocks = document.querySelector("#clocks tbody");
    if (clocks) {
      var rows = Object.keys(incident.clocks || {}).map(function (name) {
        var clock = incident.clocks[name];
        var row = el("tr", {"data-clock": name, "data-state": clock.state});
        row.appendChild(el("td", {}, name));
        row.appendChild(el("td", {"class": clock.state}, clock.state));
        row.appendChild(el("td", {}, clock.target || "tracked, no target"));
        row.appendChild(el("td", {}, clock.deadline || "—"));
        row.appendChild(el("td", {}, clock.deadline_local ? clock.deadline_local + " (" + clock.time_zone + ")" : "—"));
        var left = el("td");
        if (clock.state === "running" && clock.deadline_epoch !== null) {
          left.appendChild(el("span", {"data-deadline": String(Math.round(clock.deadline_epoch))},
                              countdown(clock.deadline_epoch - Date.now() / 1000)));
        } else {
          left.textContent = clock.breaches ? clock.breaches + " breach(es)" : "—";
        }
        row.appendChild(left);
        return row;
      });
      fillRows(clocks, rows, incident.clocks_error || "no SLA clocks", 6);
    }
    var events = document.getElementById("events");
    if (events && incident.events) {
      events.textContent = "";
      incident.events.forEach(function (event) {
        var text = event.at + " " + event.kind + " (" + event.source + ")";
        if (event.severity) { text += " severity " + event.severity; }
        if (event.ticket) { text += " ticket " + event.ticket; }
        if (event.next_update_at) { text += " next update by " + event.next_update_at; }
        if (event.note) { text += ": " + event.note; }
        events.appendChild(el("li", {"data-kind": event.kind}, text));
      });
    }
    tick();
  }
  function pollIncident() {
    var id = body.getAttribute("data-incident");
    getJSON("/api/v1/incidents/" + encodeURIComponent(id)).then(function (incident) {
      renderIncident(incident);
      setStamp(new Date().toISOString().replace(/\.\d{3}Z$/, "Z"));
    }).catch(stale);
    var live = document.querySelector("[data-live-timeline]");
    var since = live ? lastShown(live) : null;
    if (live && since !== null) {
      var url = "/api/v1/services/" + encodeURIComponent(live.getAttribute("data-live-timeline")) +
        "/timeline?from=" + encodeURIComponent(iso(since + 1));
      getJSON(url).then(function (timeline) { updateTimelines(live, timeline); }).catch(stale);
    }
  }
  function wireForm() {
    var form = document.getElementById("event-form");
    if (!form) { return; }
    var message = document.getElementById("event-result");
    form.addEventListener("submit", function (submit) {
      submit.preventDefault();
      var data = {kind: form.elements.kind.value};
      ["at", "ticket", "next_update_at", "note"].forEach(function (name) {
        var field = form.elements[name];
        if (field && field.value.trim()) { data[name] = field.value.trim(); }
      });
      var headers = {"Content-Type": "application/json", "Accept": "application/json"};
      var token = form.elements.token;
      if (token && token.value) { headers.Authorization = "Bearer " + token.value; }
      message.className = "alert";
      message.textContent = "";
      fetch(form.getAttribute("action"), {method: "POST", headers: headers, body: JSON.stringify(data)})
        .then(function (response) {
          return response.json().catch(function () { return {}; }).then(function (answer) {
            if (!response.ok) {
              message.className = "alert error";
              message.textContent = "Not recorded (HTTP " + response.status + "): " + (answer.error || response.statusText);
              return;
            }
            message.className = "alert done";
            message.textContent = "Recorded " + data.kind + ".";
            renderIncident(answer);
            pollIncident();
          });
        })
        .catch(function (error) {
          message.className = "alert error";
          message.textContent = "Not recorded: " + error.message;
        });
    });
  }

  tick();
  setInterval(tick, 1000);
  var page = body.getAttribute("data-page");
  if (page === "status") { setInterval(pollStatus, POLL_MS); }
  if (page === "incident") { wireForm(); setInterval(pollIncident, POLL_MS); }
})();
