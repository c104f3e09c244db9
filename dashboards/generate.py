# Generator of prci's Grafana dashboards (prci-overview.json, prci-stage-<stage>.json in this folder), stdlib only.
"""Writes the dashboards beside this file: python3 dashboards/generate.py [--check]

The JSON files are the source Grafana imports; this script is how they are kept consistent (one layout helper, one
datasource reference, the same variables everywhere). Edit it and run it again rather than editing the JSON by hand;
`--check` exits 1 when a JSON file differs from what the script would write. Every query selects `job=~"$job"` and
every rate or increase uses `$__rate_interval` (or `$__range` for a total over the shown range);
prci-tests/fixtures/check_dashboards.py checks the result against Grafana's dashboard model.
"""

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SCHEMA_VERSION = 39  # Grafana 10.4 / 11.x dashboards
DS = {"type": "prometheus", "uid": "${datasource}"}
J = 'job=~"$job"'
RI = "$__rate_interval"

# Stage -> (queue it consumes, queue it publishes to).
STAGES = {
    "regen": ("revisions", "prepared"),
    "checker": ("prepared", "scanned"),
    "differ": ("scanned", "verdicts"),
    "publisher": ("verdicts", None),
}
REGEN_STEPS = "fetch|merge|checkout|regen"
CHECKER_STEPS = "plan|tool_cache|scan|confirm"


class Board:
    """A dashboard under construction: panels laid out left to right, row by row, on Grafana's 24 columns."""

    def __init__(self, uid, title, description):
        self.uid, self.title, self.description = uid, title, description
        self.panels = []
        self.next_id = 1
        self.x = 0
        self.y = 0
        self.line_h = 0

    def _place(self, w, h):
        if self.x + w > 24:
            self.newline()
        pos = {"h": h, "w": w, "x": self.x, "y": self.y}
        self.x += w
        self.line_h = max(self.line_h, h)
        return pos

    def newline(self):
        self.y += self.line_h
        self.x = 0
        self.line_h = 0

    def row(self, title):
        self.newline()
        self.panels.append({"collapsed": False, "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y},
                            "id": self._id(), "panels": [], "title": title, "type": "row"})
        self.y += 1

    def _id(self):
        i = self.next_id
        self.next_id += 1
        return i

    def add(self, panel, w, h):
        panel = dict(panel)
        panel.setdefault("transformations", [])  # optional since Grafana 10.2's schema, required before
        panel["id"] = self._id()
        panel["gridPos"] = self._place(w, h)
        self.panels.append(panel)

    def json(self):
        return {
            "annotations": {"list": [{
                "builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"}, "enable": True,
                "hide": True, "iconColor": "rgba(0, 211, 255, 1)", "name": "Annotations & Alerts", "type": "dashboard",
            }]},
            "description": self.description,
            "editable": True,
            "fiscalYearStartMonth": 0,
            "graphTooltip": 1,
            "links": [{"asDropdown": True, "icon": "external link", "includeVars": True, "keepTime": True,
                       "tags": ["prci"], "targetBlank": False, "title": "prci dashboards", "tooltip": "",
                       "type": "dashboards", "url": ""}],
            "panels": self.panels,
            "refresh": "1m",
            "schemaVersion": SCHEMA_VERSION,
            "tags": ["prci"],
            "templating": {"list": variables()},
            "time": {"from": "now-6h", "to": "now"},
            "timepicker": {},
            "timezone": "browser",
            "title": self.title,
            "uid": self.uid,
            "version": 1,
            "weekStart": "",
        }


def variables():
    return [
        {"current": {}, "hide": 0, "includeAll": False, "label": "Data source", "multi": False, "name": "datasource",
         "options": [], "query": "prometheus", "refresh": 1, "regex": "", "skipUrlSync": False, "type": "datasource"},
        {"allValue": ".*", "current": {"selected": True, "text": ["All"], "value": ["$__all"]}, "datasource": DS,
         "definition": "label_values(prci_build_info, job)", "hide": 0, "includeAll": True, "label": "Job",
         "multi": True, "name": "job", "options": [],
         "query": {"qryType": 1, "query": "label_values(prci_build_info, job)",
                   "refId": "PrometheusVariableQueryEditor-VariableQuery"},
         "refresh": 2, "regex": "", "skipUrlSync": False, "sort": 1, "type": "query"},
    ]


def target(ref, expr, legend="__auto", instant=False, fmt=None):
    t = {"datasource": DS, "editorMode": "code", "expr": expr, "legendFormat": legend, "refId": ref}
    if instant:
        t["instant"] = True
        t["range"] = False
    else:
        t["range"] = True
    if fmt:
        t["format"] = fmt
    return t


def thresholds(*steps):
    """steps: (value or None for the base, colour)."""
    return {"mode": "absolute", "steps": [{"color": c, "value": v} for v, c in steps]}


def timeseries(title, description, targets, unit="short", min_val=0, max_val=None, bars=False, stack=False,
               threshold_line=None, calcs=("lastNotNull", "max")):
    defaults = {
        "color": {"mode": "palette-classic"},
        "custom": {
            "axisBorderShow": False, "axisCenteredZero": False, "axisColorMode": "text", "axisLabel": "",
            "axisPlacement": "auto", "barAlignment": 0, "drawStyle": "bars" if bars else "line",
            "fillOpacity": 60 if bars else 10, "gradientMode": "none",
            "hideFrom": {"legend": False, "tooltip": False, "viz": False}, "insertNulls": False,
            "lineInterpolation": "linear", "lineWidth": 1, "pointSize": 4,
            "scaleDistribution": {"type": "linear"}, "showPoints": "never", "spanNulls": False,
            "stacking": {"group": "A", "mode": "normal" if stack else "none"},
            "thresholdsStyle": {"mode": "dashed" if threshold_line is not None else "off"},
        },
        "mappings": [],
        "thresholds": thresholds((None, "green"), *([(threshold_line, "red")] if threshold_line is not None else [])),
        "unit": unit,
    }
    if min_val is not None:
        defaults["min"] = min_val
    if max_val is not None:
        defaults["max"] = max_val
    return {
        "datasource": DS, "description": description,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {"legend": {"calcs": list(calcs), "displayMode": "table", "placement": "bottom", "showLegend": True},
                    "tooltip": {"mode": "multi", "sort": "desc"}},
        "targets": targets, "title": title, "type": "timeseries",
    }


def stat(title, description, targets, unit="short", steps=((None, "green"),), color_mode="value", decimals=None):
    defaults = {"color": {"mode": "thresholds"}, "mappings": [], "thresholds": thresholds(*steps), "unit": unit}
    if decimals is not None:
        defaults["decimals"] = decimals
    return {
        "datasource": DS, "description": description,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {"colorMode": color_mode, "graphMode": "none", "justifyMode": "auto", "orientation": "auto",
                    "percentChangeColorMode": "standard",
                    "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                    "showPercentChange": False, "textMode": "value_and_name", "wideLayout": True},
        "targets": targets, "title": title, "type": "stat",
    }


def table(title, description, targets, hide=("Time", "Value"), rename=None):
    return {
        "datasource": DS, "description": description,
        "fieldConfig": {"defaults": {"custom": {"align": "auto", "cellOptions": {"type": "auto"}, "inspect": False},
                                     "mappings": [], "thresholds": thresholds((None, "green"))},
                        "overrides": []},
        "options": {"cellHeight": "sm", "footer": {"countRows": False, "reducer": ["sum"], "show": False},
                    "showHeader": True, "sortBy": [{"desc": False, "displayName": "instance"}]},
        "targets": targets, "title": title, "type": "table",
        "transformations": [{"id": "organize", "options": {"excludeByName": {h: True for h in hide},
                                                            "indexByName": {}, "renameByName": rename or {}}}],
    }


def up_down_timeline(title, description, targets):
    return {
        "datasource": DS, "description": description,
        "fieldConfig": {"defaults": {
            "color": {"mode": "thresholds"},
            "custom": {"fillOpacity": 80, "hideFrom": {"legend": False, "tooltip": False, "viz": False},
                       "lineWidth": 0},
            "mappings": [{"type": "value", "options": {"0": {"color": "red", "index": 0, "text": "down"},
                                                       "1": {"color": "green", "index": 1, "text": "up"}}}],
            "thresholds": thresholds((None, "red"), (1, "green")),
        }, "overrides": []},
        "options": {"alignValue": "left", "legend": {"displayMode": "list", "placement": "bottom", "showLegend": False},
                    "mergeValues": True, "rowHeight": 0.9, "showValue": "auto",
                    "tooltip": {"mode": "single", "sort": "none"}},
        "targets": targets, "title": title, "type": "state-timeline",
    }


# ---- queries -------------------------------------------------------------------------------------------------------

def sel(extra=""):
    return "{" + J + ("," + extra if extra else "") + "}"


def quantile(q, metric, by, extra=""):
    by_le = ", ".join([*by, "le"])
    return f"histogram_quantile({q}, sum by ({by_le}) (rate({metric}_bucket{sel(extra)}[{RI}])))"


def per_min(metric, by, extra=""):
    group = f"sum by ({', '.join(by)}) " if by else "sum"
    return f"60 * {group}(rate({metric}{sel(extra)}[{RI}]))"


def quantile_targets(metric, by, extra="", qs=(0.5, 0.95), label=""):
    legend_base = " ".join("{{" + b + "}}" for b in by)
    return [target(chr(ord("A") + i), quantile(q, metric, by, extra),
                   f"{legend_base} p{int(q * 100)}".strip() if not label else f"{label} p{int(q * 100)}")
            for i, q in enumerate(qs)]


HIT = 'result="hit"'
REVISIONS_Q = 'queue="revisions"'
REGEN_STAGE = 'stage="regen"'
OLDEST = f"max(prci_oldest_unpublished_revision_age_seconds{sel()})"
GITHUB_RATIO = (f"prci_github_rate_limit_remaining{sel()} / (prci_github_rate_limit_limit{sel()} > 0)")
CACHE_RATIO = (f'sum(rate(prci_base_cache_lookups_total{sel(HIT)}[{RI}]))'
               f" / sum(rate(prci_base_cache_lookups_total{sel()}[{RI}]))")
AGE_STEPS = ((None, "green"), (1800, "orange"), (3600, "red"))


def github_budget_panel():
    return timeseries(
        "GitHub API budget remaining",
        "Requests left until GitHub's rate-limit window resets, per process with a GitHub forge (poller, publisher). "
        "The alert PrciGithubBudgetLow fires under 10% of the limit.",
        [target("A", f"max by (instance) (prci_github_rate_limit_remaining{sel()})", "remaining {{instance}}"),
         target("B", f"max by (instance) (prci_github_rate_limit_limit{sel()})", "limit {{instance}}")])


def sandbox_panel():
    return timeseries(
        "Sandbox limit hits",
        "Tool runs stopped at a sandbox limit, by limit (all sandboxed runs of the selected jobs: regen and checker "
        "share the sandbox).",
        [target("A", f"sum by (limit) (increase(prci_sandbox_limit_hits_total{sel()}[{RI}]))", "{{limit}}")],
        bars=True, stack=True, calcs=("sum",))


def tool_versions_table():
    return table(
        "QA tool versions per host",
        "pkgcheck and pkgcore versions each checker process runs; the alert PrciQaToolVersionsDiffer fires when hosts "
        "disagree.",
        [target("A", f"max by (instance, tool, version) (prci_qa_tool_info{sel()})", "", instant=True, fmt="table")])


def step_panel(title, steps):
    return timeseries(
        title, f"Duration of the tool steps {steps.replace('|', ', ')} (p50 and p95 per step).",
        quantile_targets("prci_tool_run_seconds", ["step"], f'step=~"{steps}"'), unit="s")


def cache_panels():
    return [
        (timeseries("Base cache hit ratio",
                    "Share of base-result cache lookups that hit (a miss scans the base side again).",
                    [target("A", CACHE_RATIO, "hit ratio")], unit="percentunit", max_val=1), 8),
        (timeseries("Base cache lookups",
                    "Base-result cache lookups per minute, by result.",
                    [target("A", per_min("prci_base_cache_lookups_total", ["result"]), "{{result}}")], unit="opm"), 8),
    ]


# ---- overview ------------------------------------------------------------------------------------------------------

def overview():
    b = Board("prci-overview", "prci / overview",
              "prci pipeline (poller → regen → checker → differ → publisher): throughput, latency, queues, consumers "
              "and the tools behind them, from prci's own metrics.")
    b.row("Pipeline")
    b.add(stat("Oldest unpublished revision", "Age of the oldest revision detected but not yet published "
               "(0 when nothing is in flight). Alert over 3600 s.",
               [target("A", OLDEST, "age", instant=True)], unit="s", steps=AGE_STEPS), 5, 5)
    b.add(stat("Consumers per stage", "Processes consuming each stage's queue now; 0 means the stage is stopped.",
               [target("A", f"sum by (stage) (prci_consumer_up{sel()})", "{{stage}}", instant=True)],
               steps=((None, "red"), (1, "green")), color_mode="background"), 9, 5)
    b.add(stat("Verdicts in range", "Verdicts published over the dashboard's time range, by verdict.",
               [target("A", f"sum by (verdict) (increase(prci_verdicts_total{sel()}[$__range]))", "{{verdict}}",
                       instant=True)], decimals=0), 5, 5)
    b.add(stat("GitHub budget remaining", "Lowest share of the GitHub API rate limit left, over the processes "
               "with a GitHub forge.",
               [target("A", f"min({GITHUB_RATIO})", "remaining", instant=True)], unit="percentunit",
               steps=((None, "red"), (0.1, "orange"), (0.25, "green"))), 5, 5)
    b.add(timeseries("Throughput per stage", "Messages each stage completed with outcome ok, per minute.",
                     [target("A", per_min("prci_messages_completed_total", ["stage"], 'outcome="ok"'), "{{stage}}")],
                     unit="opm"), 12, 8)
    b.add(timeseries("Errors and dead letters",
                     "Messages retried and dead-lettered per stage, and error verdicts published, per minute.",
                     [target("A", per_min("prci_messages_completed_total", ["stage"], 'outcome="dead_lettered"'),
                             "{{stage}} dead-lettered"),
                      target("B", per_min("prci_messages_completed_total", ["stage"], 'outcome="retried"'),
                             "{{stage}} retried"),
                      target("C", per_min("prci_verdicts_total", [], 'verdict="error"'), "error verdicts")],
                     unit="opm"), 12, 8)

    b.row("Latency")
    b.add(timeseries("Processing time per stage", "Time a stage spends on one message, p50 and p95.",
                     quantile_targets("prci_message_processing_seconds", ["stage"]), unit="s"), 12, 8)
    b.add(timeseries("Queue wait per stage (p95)", "Time a message waits in a stage's queue before it is taken, p95.",
                     quantile_targets("prci_message_queue_wait_seconds", ["stage"], qs=(0.95,)), unit="s"), 12, 8)
    b.add(timeseries("End-to-end latency", "From a revision detected to its verdict published: p50, p95, p99.",
                     quantile_targets("prci_end_to_end_latency_seconds", [], qs=(0.5, 0.95, 0.99), label="end-to-end"),
                     unit="s"), 12, 8)
    b.add(timeseries("Oldest unpublished revision age", "Age of the oldest revision in flight (publisher); the "
                     "dashed line is the alert threshold (3600 s).",
                     [target("A", OLDEST, "oldest unpublished")], unit="s", threshold_line=3600), 12, 8)

    b.row("Queues and consumers")
    b.add(timeseries("Queue depth", "Messages waiting per queue and kind (work, priority, dead), as the broker "
                     "counts them; every consumer of a queue reports it, so the maximum is shown.",
                     [target("A", f"max by (queue, kind) (prci_queue_depth{sel()})", "{{queue}} {{kind}}")]), 12, 8)
    b.add(up_down_timeline("Consumers per stage and host", "1 while a process consumes a stage's queue, 0 when its "
                           "consumer is down.",
                           [target("A", f"sum by (stage, instance) (prci_consumer_up{sel()})",
                                   "{{stage}} {{instance}}")]), 12, 8)
    b.add(timeseries("Messages in progress", "Messages each stage is working on now.",
                     [target("A", f"sum by (stage) (prci_messages_in_progress{sel()})", "{{stage}}")]), 8, 8)
    b.add(tool_versions_table(), 8, 8)
    b.add(table("prci versions per host", "The prci version each process runs.",
                [target("A", f"max by (instance, version) (prci_build_info{sel()})", "", instant=True,
                        fmt="table")]), 8, 8)

    b.row("Tools and limits")
    for panel, w in cache_panels():
        b.add(panel, w, 8)
    b.add(sandbox_panel(), 8, 8)
    b.add(timeseries("Tool step duration (p95)", "p95 of every tool step (fetch, merge, checkout, regen, plan, "
                     "tool_cache, scan, confirm).",
                     quantile_targets("prci_tool_run_seconds", ["step"], qs=(0.95,)), unit="s"), 12, 8)
    b.add(github_budget_panel(), 12, 8)
    return b.json()


# ---- one stage -----------------------------------------------------------------------------------------------------

def stage_common(b, stage, inq, outq):
    s = f'stage="{stage}"'
    in_q = f'queue="{inq}"'
    b.row(f"{stage}: messages")
    b.add(stat("Consumers", f"Processes consuming the {stage} queue now.",
               [target("A", f"sum(prci_consumer_up{sel(s)})", "consumers", instant=True)],
               steps=((None, "red"), (1, "green")), color_mode="background"), 4, 5)
    b.add(stat("In progress", f"Messages {stage} is working on now.",
               [target("A", f"sum(prci_messages_in_progress{sel(s)})", "in progress", instant=True)]), 4, 5)
    b.add(stat("Completed in range", "Messages completed over the dashboard's time range, by outcome.",
               [target("A", f"sum by (outcome) (increase(prci_messages_completed_total{sel(s)}[$__range]))",
                       "{{outcome}}", instant=True)], decimals=0), 10, 5)
    b.add(stat(f"Waiting in {inq}", f"Messages waiting in {stage}'s input queue, by kind.",
               [target("A", f'max by (kind) (prci_queue_depth{sel(in_q)})', "{{kind}}",
                       instant=True)]), 6, 5)
    b.add(timeseries("Throughput by outcome", f"Messages {stage} took and completed per minute, by outcome.",
                     [target("A", per_min("prci_messages_completed_total", ["outcome"], s), "{{outcome}}"),
                      target("B", per_min("prci_messages_received_total", [], s), "received")],
                     unit="opm"), 12, 8)
    b.add(timeseries("Processing time", f"Time {stage} spends on one message: p50, p95, p99.",
                     quantile_targets("prci_message_processing_seconds", [], s, qs=(0.5, 0.95, 0.99),
                                      label="processing"), unit="s"), 12, 8)
    b.add(timeseries("Queue wait", f"Time a message waits in {stage}'s queue: p50, p95.",
                     quantile_targets("prci_message_queue_wait_seconds", [], s, label="wait"), unit="s"), 12, 8)
    b.add(timeseries("In progress by instance", f"Messages {stage} is working on, per process.",
                     [target("A", f"sum by (instance) (prci_messages_in_progress{sel(s)})", "{{instance}}")]), 12, 8)
    b.add(up_down_timeline("Consumers by instance", f"1 while a process consumes the {stage} queue.",
                           [target("A", f"sum by (instance) (prci_consumer_up{sel(s)})", "{{instance}}")]), 12, 8)
    queues = f'queue=~"{inq}|{outq}"' if outq else f'queue="{inq}"'
    b.add(timeseries("Queue depth", f"Messages waiting in {stage}'s input queue ({inq})"
                     + (f" and output queue ({outq})" if outq else "") + ", by kind.",
                     [target("A", f"max by (queue, kind) (prci_queue_depth{sel(queues)})", "{{queue}} {{kind}}")]),
          12, 8)


def stage_board(stage):
    inq, outq = STAGES[stage]
    b = Board(f"prci-stage-{stage}", f"prci / stage {stage}",
              f"prci's {stage} stage: consumes {inq}" + (f", publishes to {outq}" if outq else "") + ".")
    stage_common(b, stage, inq, outq)
    if stage == "regen":
        b.row("regen: tools")
        b.add(step_panel("Tool steps (fetch, merge, checkout, regen)", REGEN_STEPS), 12, 8)
        b.add(sandbox_panel(), 12, 8)
        b.add(timeseries("Tool steps per minute", "Tool steps run per minute, by step.",
                         [target("A", per_min("prci_tool_run_seconds_count", ["step"], f'step=~"{REGEN_STEPS}"'),
                                 "{{step}}")], unit="opm"), 24, 8)
    elif stage == "checker":
        b.row("checker: tools")
        b.add(step_panel("Tool steps (plan, tool_cache, scan, confirm)", CHECKER_STEPS), 12, 8)
        b.add(timeseries("Tool steps per minute", "Tool steps run per minute, by step.",
                         [target("A", per_min("prci_tool_run_seconds_count", ["step"], f'step=~"{CHECKER_STEPS}"'),
                                 "{{step}}")], unit="opm"), 12, 8)
        for panel, w in cache_panels():
            b.add(panel, w, 8)
        b.add(tool_versions_table(), 8, 8)
        b.add(sandbox_panel(), 24, 8)
    elif stage == "publisher":
        b.row("publisher: verdicts")
        b.add(stat("Oldest unpublished revision", "Age of the oldest revision in flight; alert over 3600 s.",
                   [target("A", OLDEST, "age", instant=True)], unit="s", steps=AGE_STEPS), 6, 5)
        b.add(stat("Verdicts in range", "Verdicts published over the dashboard's time range.",
                   [target("A", f"sum by (verdict) (increase(prci_verdicts_total{sel()}[$__range]))", "{{verdict}}",
                           instant=True)], decimals=0), 12, 5)
        b.add(stat("GitHub budget remaining", "Lowest share of the GitHub API rate limit left.",
                   [target("A", f"min({GITHUB_RATIO})", "remaining", instant=True)], unit="percentunit",
                   steps=((None, "red"), (0.1, "orange"), (0.25, "green"))), 6, 5)
        b.add(timeseries("End-to-end latency", "From a revision detected to its verdict published: p50, p95, p99.",
                         quantile_targets("prci_end_to_end_latency_seconds", [], qs=(0.5, 0.95, 0.99),
                                          label="end-to-end"), unit="s"), 12, 8)
        b.add(timeseries("Verdicts per minute", "Verdicts published per minute, by verdict.",
                         [target("A", per_min("prci_verdicts_total", ["verdict"]), "{{verdict}}")], unit="opm",
                         stack=True), 12, 8)
        b.add(timeseries("Oldest unpublished revision age", "Dashed line: the alert threshold (3600 s).",
                         [target("A", OLDEST, "oldest unpublished")], unit="s", threshold_line=3600), 12, 8)
        b.add(github_budget_panel(), 12, 8)
    return b.json()


def poller_board():
    b = Board("prci-stage-poller", "prci / stage poller",
              "prci's poller: detects pull-request revisions and emits them to the revisions queue.")
    emitted = "prci_revisions_emitted_total"
    b.row("poller")
    b.add(stat("Poller processes", "Processes exporting the poller's counter now.",
               [target("A", f"count({emitted}{sel()})", "pollers", instant=True)],
               steps=((None, "red"), (1, "green")), color_mode="background"), 4, 5)
    b.add(stat("Revisions emitted in range", "Revisions emitted over the dashboard's time range.",
               [target("A", f"sum(increase({emitted}{sel()}[$__range]))", "emitted", instant=True)], decimals=0), 6, 5)
    b.add(stat("Waiting in revisions", "Messages waiting in the revisions queue, by kind.",
               [target("A", f'max by (kind) (prci_queue_depth{sel(REVISIONS_Q)})', "{{kind}}",
                       instant=True)]), 8, 5)
    b.add(stat("GitHub budget remaining", "Lowest share of the GitHub API rate limit left.",
               [target("A", f"min({GITHUB_RATIO})", "remaining", instant=True)], unit="percentunit",
               steps=((None, "red"), (0.1, "orange"), (0.25, "green"))), 6, 5)
    b.add(timeseries("Revisions emitted per minute", "Revisions the poller emitted per minute, per process.",
                     [target("A", per_min(emitted, ["instance"]), "{{instance}}")], unit="opm"), 12, 8)
    b.add(timeseries("Revisions queue depth", "Messages waiting in the revisions queue (regen's input), by kind.",
                     [target("A", f'max by (kind) (prci_queue_depth{sel(REVISIONS_Q)})', "{{kind}}")]),
          12, 8)
    b.add(github_budget_panel(), 12, 8)
    b.add(up_down_timeline("regen consumers by instance", "The poller's output is consumed by regen: 1 while a "
                           "process consumes the revisions queue.",
                           [target("A", f'sum by (instance) (prci_consumer_up{sel(REGEN_STAGE)})',
                                   "{{instance}}")]), 12, 8)
    return b.json()


def boards():
    out = {"prci-overview.json": overview(), "prci-stage-poller.json": poller_board()}
    for stage in STAGES:
        out[f"prci-stage-{stage}.json"] = stage_board(stage)
    return out


def main():
    check = "--check" in sys.argv[1:]
    stale = []
    for name, board in boards().items():
        text = json.dumps(board, indent=2, ensure_ascii=False) + "\n"
        path = os.path.join(HERE, name)
        if check:
            try:
                with open(path, encoding="utf-8") as f:
                    if f.read() != text:
                        stale.append(name)
            except FileNotFoundError:
                stale.append(name)
        else:
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
            print(f"wrote {path}")
    if stale:
        print("out of date (run python3 dashboards/generate.py): " + ", ".join(stale), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
