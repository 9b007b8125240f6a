#!/usr/bin/env python3
"""Checks for deploy/validate.sh (Python 3 standard library + PyYAML, which Debian's yamllint depends on).

  check_dashboard.py names DASHBOARD METRICS_JSON DATASOURCE_YAML
      every metric a dashboard query (or template variable) uses is in metrics.json, with the right series suffix
      (_bucket/_sum/_count only on histograms); every label in a matcher or by(...) is one the metric has (or job,
      instance, le); every panel and target uses the provisioned datasource uid.
  check_dashboard.py promtool DASHBOARD METRICS_JSON RULES_OUT TEST_OUT
      writes a rules file with one recording rule per dashboard query (Grafana variables substituted) and a
      `promtool test rules` file whose synthetic input series are named and labelled from metrics.json, expecting
      every query to return at least one sample.
  check_dashboard.py collector OTEL_COLLECTOR_YAML COMPOSE_YAML PROMETHEUS_YML
      collector pipelines reference defined receivers/processors/exporters/extensions; the OTLP endpoint in compose,
      the collector's listen ports, the config mount and Prometheus' scrape target agree.
"""
import json
import re
import sys

import yaml

KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless",
            "offset", "inf", "nan", "atan2", "start", "end"}
ALWAYS_LABELS = {"job", "instance"}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
GRAFANA_VARS = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h", "$instance": ".*"}


def substitute(expr):
    for k, v in GRAFANA_VARS.items():
        expr = expr.replace(k, v)
    return expr


def parse_promql(expr):
    """(metric names, label names) used by a PromQL expression: a small lexer, enough for dashboard queries."""
    labels = set()
    expr = substitute(expr)
    # label matchers {a="x", b=~"y"}: keep the label names, drop the block
    for block in re.findall(r"\{([^}]*)\}", expr):
        for m in re.finditer(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"(?:[^"\\]|\\.)*"', block):
            labels.add(m.group(1))
    expr = re.sub(r"\{[^}]*\}", " ", expr)
    expr = re.sub(r"\[[^\]]*\]", " ", expr)                   # range selectors
    for m in re.finditer(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)", expr):
        labels.update(x.strip() for x in m.group(2).split(",") if x.strip())
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', " ", expr)            # remaining strings (label_replace arguments...)
    metrics = set()
    for m in re.finditer(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\()?", expr):
        name, call = m.group(1), m.group(2)
        if call or name.lower() in KEYWORDS:
            continue
        metrics.add(name)
    return metrics, labels


def dashboard_queries(dashboard):
    """(where, expr) for every panel target and every query template variable."""
    out = []

    def panels(ps):
        for p in ps:
            yield p
            yield from panels(p.get("panels", []))

    for p in panels(dashboard.get("panels", [])):
        for t in p.get("targets", []):
            if "expr" in t:
                out.append((f'panel {p.get("id")} "{p.get("title")}" {t.get("refId")}', t["expr"]))
    for v in dashboard.get("templating", {}).get("list", []):
        q = v.get("query")
        q = q.get("query") if isinstance(q, dict) else q
        if v.get("type") == "query" and q:
            m = re.fullmatch(r"\s*label_values\((.*),\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)\s*", q)
            if m:
                out.append((f'variable {v.get("name")}', m.group(1)))
            else:
                out.append((f'variable {v.get("name")}', q))
    return out


def catalog_index(catalog):
    """prometheus series name -> (catalog entry, suffix)."""
    index = {}
    for e in catalog["metrics"]:
        if e["kind"] == "histogram":
            for s in HISTOGRAM_SUFFIXES:
                index[e["prometheus"] + s] = (e, s)
        else:
            index[e["prometheus"]] = (e, "")
    return index


def check_names(dashboard_path, catalog_path, datasource_path):
    dashboard = json.load(open(dashboard_path))
    catalog = json.load(open(catalog_path))
    ds = yaml.safe_load(open(datasource_path))
    uids = {d["uid"] for d in ds["datasources"]}
    index = catalog_index(catalog)
    errors, used = [], set()
    queries = dashboard_queries(dashboard)
    if not queries:
        errors.append("no queries found in the dashboard")
    for where, expr in queries:
        metrics, labels = parse_promql(expr)
        if not metrics:
            errors.append(f"{where}: no metric in '{expr}'")
        allowed = set(ALWAYS_LABELS)
        for name in metrics:
            if name not in index:
                errors.append(f"{where}: metric {name} is not in metrics.json")
                continue
            entry, suffix = index[name]
            used.add(entry["otel"])
            allowed.update(entry["labels"])
            if suffix == "_bucket":
                allowed.add("le")
        for label in labels - allowed:
            errors.append(f"{where}: label '{label}' is not a label of {sorted(metrics)}")
    for p in dashboard.get("panels", []):
        if p.get("type") == "row":
            continue
        for obj in [p] + p.get("targets", []):
            uid = (obj.get("datasource") or {}).get("uid")
            if uid not in uids:
                errors.append(f'panel {p.get("id")}: datasource uid {uid!r} is not provisioned ({sorted(uids)})')
    for e in errors:
        print(e)
    print(f"{len(queries)} queries, {len(used)} of {len(catalog['metrics'])} catalog metrics used: {sorted(used)}")
    return not errors


LABEL_VALUES = {"stage": ["capture", "decode", "preprocess", "infer", "total"], "block": ["0", "1", "11"],
                "kind": ["source", "decode"], "zone": ["thermal_zone0:cpu-thermal"]}


def series_for(entry):
    base = {"job": "edgevit", "instance": "board-1"}
    combos = [base]
    for label in entry["labels"]:
        combos = [dict(c, **{label: v}) for c in combos for v in LABEL_VALUES.get(label, ["x"])]

    def sel(name, labels):
        return name + "{" + ", ".join(f'{k}="{v}"' for k, v in labels.items()) + "}"

    out = []
    for labels in combos:
        if entry["kind"] == "counter":
            out.append((sel(entry["prometheus"], labels), "0+10x40"))
        elif entry["kind"] == "gauge":
            value = {"1": "0.7", "Cel": "55", "ms": "150"}.get(entry["unit"], "327685")  # 0x50005 for the flags
            out.append((sel(entry["prometheus"], labels), f"{value}x40"))
        else:
            for le, per_min in (("1", 1), ("10", 5), ("100", 9), ("+Inf", 10)):
                out.append((sel(entry["prometheus"] + "_bucket", dict(labels, le=le)), f"0+{per_min}x40"))
            out.append((sel(entry["prometheus"] + "_sum", labels), "0+250x40"))
            out.append((sel(entry["prometheus"] + "_count", labels), "0+10x40"))
    return out


def write_promtool(dashboard_path, catalog_path, rules_out, test_out):
    dashboard = json.load(open(dashboard_path))
    catalog = json.load(open(catalog_path))
    queries = [(w, substitute(e)) for w, e in dashboard_queries(dashboard)]
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query{i}", "expr": e} for i, (_, e) in enumerate(queries)]}]}
    with open(rules_out, "w") as f:
        yaml.safe_dump(rules, f, sort_keys=False, width=1000)
    inputs = [{"series": s, "values": v} for e in catalog["metrics"] for s, v in series_for(e)]
    tests = [{
        "interval": "1m",
        "input_series": inputs,
        "promql_expr_test": [{"expr": f"count({e}) > bool 0", "eval_time": "30m",
                              "exp_samples": [{"labels": "{}", "value": 1}]} for _, e in queries],
    }]
    with open(test_out, "w") as f:
        f.write("# generated by check_dashboard.py from the dashboard and metrics.json\n")
        yaml.safe_dump({"rule_files": [rules_out], "evaluation_interval": "1m", "tests": tests}, f,
                       sort_keys=False, width=1000)
    print(f"{len(queries)} queries, {len(inputs)} input series")
    return True


def port_of(address):
    return int(str(address).rsplit(":", 1)[1].split("/")[0])


def check_collector(collector_path, compose_path, prometheus_path):
    c = yaml.safe_load(open(collector_path))
    compose = yaml.safe_load(open(compose_path))
    prom = yaml.safe_load(open(prometheus_path))
    errors = []
    svc = c.get("service", {})
    for ext in svc.get("extensions", []):
        if ext not in (c.get("extensions") or {}):
            errors.append(f"service.extensions: {ext} is not defined")
    pipelines = svc.get("pipelines") or {}
    if "metrics" not in pipelines:
        errors.append("no metrics pipeline")
    for name, p in pipelines.items():
        if name.split("/")[0] not in ("metrics", "traces", "logs"):
            errors.append(f"pipeline {name}: unknown signal")
        for section in ("receivers", "processors", "exporters"):
            for comp in p.get(section, []):
                if comp not in (c.get(section) or {}):
                    errors.append(f"pipeline {name}: {section[:-1]} {comp} is not defined")
        if not p.get("receivers") or not p.get("exporters"):
            errors.append(f"pipeline {name}: needs receivers and exporters")
    for section in ("receivers", "processors", "exporters"):
        used = {x for p in pipelines.values() for x in p.get(section, [])}
        for comp in (c.get(section) or {}):
            if comp not in used:
                errors.append(f"{section[:-1]} {comp} is defined but in no pipeline")
    if "prometheus" not in pipelines.get("metrics", {}).get("exporters", []):
        errors.append("metrics pipeline does not export to prometheus")
    for opt in ("add_metric_suffixes", "translation_strategy", "namespace"):
        if opt in (c.get("exporters", {}).get("prometheus") or {}):
            errors.append(f"exporters.prometheus.{opt} is set: metrics.json assumes the default naming")

    services = compose["services"]
    collector_name = next((n for n, s in services.items() if "opentelemetry-collector" in str(s.get("image", ""))), None)
    if not collector_name:
        errors.append("compose has no opentelemetry-collector service")
    else:
        mounts = services[collector_name].get("volumes", [])
        if not any(isinstance(m, dict) and m.get("source", "").endswith("otel-collector.yaml")
                   and m.get("target") == "/etc/otelcol-contrib/config.yaml" for m in mounts):
            errors.append("compose does not mount otel-collector.yaml at /etc/otelcol-contrib/config.yaml")
        grpc = c["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]
        endpoint = services["edgevit"]["environment"].get("OTEL_EXPORTER_OTLP_ENDPOINT", "")
        m = re.fullmatch(r"http://([^:/]+):(\d+)/?", endpoint)
        if not m or m.group(1) != collector_name or int(m.group(2)) != port_of(grpc):
            errors.append(f"edgevit OTEL_EXPORTER_OTLP_ENDPOINT {endpoint!r} is not {collector_name}:{port_of(grpc)}")
        if services["edgevit"]["environment"].get("OTEL_EXPORTER_OTLP_PROTOCOL") != "grpc":
            errors.append("edgevit OTEL_EXPORTER_OTLP_PROTOCOL is not grpc (the endpoint is the gRPC port)")
        exporter_port = port_of(c["exporters"]["prometheus"]["endpoint"])
        targets = [t for job in prom["scrape_configs"] for sc in job.get("static_configs", []) for t in sc["targets"]]
        if f"{collector_name}:{exporter_port}" not in targets:
            errors.append(f"prometheus.yml does not scrape {collector_name}:{exporter_port} (targets {targets})")
        jobs = [j for j in prom["scrape_configs"] if f"{collector_name}:{exporter_port}" in
                [t for sc in j.get("static_configs", []) for t in sc["targets"]]]
        if jobs and not jobs[0].get("honor_labels"):
            errors.append("the collector scrape job needs honor_labels: true (job/instance come from the service)")
    for e in errors:
        print(e)
    return not errors


def main(argv):
    mode, args = argv[1], argv[2:]
    ok = {"names": check_names, "promtool": write_promtool, "collector": check_collector}[mode](*args)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
