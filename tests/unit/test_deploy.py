"""deploy/: what users with Docker/Kubernetes run stays valid and in step with the code.

The compose file, the Dockerfile, the Kubernetes manifests, the Prometheus rules and the
Grafana dashboard are checked for structure, for the settings and ports the worker really
has, and for metric names the worker really exports (read from engine.metrics).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from engine.metrics import WorkerMetrics
from engine.settings import Settings, WorkerSettings, load_settings

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
YAML_FILES = sorted([*DEPLOY.rglob("*.yaml"), *DEPLOY.rglob("*.yml")])

# DESIGN.md, "Metrics": the only names the alert rules may use
DESIGN_METRICS = {
    "scamwatch_events_total",
    "scamwatch_alerts_total",
    "scamwatch_deadletter_total",
    "scamwatch_indicators",
    "scamwatch_indicator_version",
    "scamwatch_indicator_store_up",
    "scamwatch_matcher_build_seconds",
    "scamwatch_event_latency_seconds",
}
# DESIGN.md, "Settings": every deployment sets these
DESIGN_SETTINGS = {
    "SCAMWATCH_KAFKA_BOOTSTRAP",
    "SCAMWATCH_REDIS_URL",
    "SCAMWATCH_DEFAULT_REGION",
    "SCAMWATCH_TOPIC_CALLS",
    "SCAMWATCH_TOPIC_WEB",
    "SCAMWATCH_TOPIC_ALERTS",
    "SCAMWATCH_TOPIC_DEADLETTER",
    "SCAMWATCH_APP_ID",
    "SCAMWATCH_METRICS_PORT",
}
# beyond DESIGN.md: the worker's consumer lag (README, "Metrics") and Prometheus' own `up`
RULE_METRICS = DESIGN_METRICS | {"scamwatch_consumer_lag"}
PROMETHEUS_METRICS = {"up"}
SECRET_SETTINGS = {"SCAMWATCH_REDIS_URL", "SCAMWATCH_KAFKA_SASL_PASSWORD"}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
PROMQL_KEYWORDS = {
    "and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
    "group_left", "group_right", "inf", "nan",
}  # fmt: skip


# --- helpers ------------------------------------------------------------------------------


def _load_yaml(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc is not None]


def _exported_sample_names() -> set[str]:
    """Every sample name a worker's /metrics can carry, from engine.metrics' registry."""
    registry: CollectorRegistry = WorkerMetrics().registry
    names: set[str] = set()
    for family in registry.collect():
        names.update(sample.name for sample in family.samples)
        if family.type == "counter":
            names.update({f"{family.name}_total", f"{family.name}_created"})
        elif family.type == "histogram":
            names.add(family.name)  # the family name, as rules and docs refer to it
            names.update(f"{family.name}{s}" for s in (*HISTOGRAM_SUFFIXES, "_created"))
        else:
            names.add(family.name)
    return names


def _base_name(sample: str, known: set[str]) -> str:
    for suffix in HISTOGRAM_SUFFIXES:
        if sample.endswith(suffix) and sample.removesuffix(suffix) in known:
            return sample.removesuffix(suffix)
    return sample


def _promql_balanced(expr: str) -> bool:
    pairs = {")": "(", "]": "[", "}": "{"}
    stack: list[str] = []
    quote: str | None = None
    escaped = False
    for char in expr:
        if quote:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == quote:
                quote = None
        elif char in "\"'`":
            quote = char
        elif char in "([{":
            stack.append(char)
        elif char in pairs and (not stack or stack.pop() != pairs[char]):
            return False
    return not stack and quote is None


def _promql_names(expr: str) -> set[str]:
    """Metric (and recording-rule) names an expression reads: every identifier that is not
    a function, keyword, label name, label value, duration or Grafana variable."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)
    text = re.sub(r"\{[^{}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\[\]]*\]", " ", text)  # ranges, subqueries
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", " ", text)
    text = re.sub(r"\boffset\s+\S+", " ", text)
    names: set[str] = set()
    for match in re.finditer(r"(?<![\w$.])[A-Za-z_:][A-Za-z0-9_:]*", text):
        rest = text[match.end() :].lstrip()
        if rest.startswith("(") or match.group() in PROMQL_KEYWORDS:
            continue
        names.add(match.group())
    return names


def _rules() -> list[dict[str, Any]]:
    (doc,) = _load_yaml(DEPLOY / "prometheus" / "rules.yml")
    return [rule for group in doc["groups"] for rule in group["rules"]]


def _dashboard() -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(
        (DEPLOY / "grafana" / "scamwatch-dashboard.json").read_text()
    )
    return dashboard


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def _compose() -> dict[str, Any]:
    (doc,) = _load_yaml(DEPLOY / "compose.yaml")
    assert isinstance(doc, dict)
    return doc


def _k8s_objects() -> dict[str, dict[str, Any]]:
    objects: dict[str, dict[str, Any]] = {}
    for path in sorted(K8S.glob("*.yaml")):
        for doc in _load_yaml(path):
            objects[doc["kind"]] = doc
    return objects


def _settings_from_env(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name in Settings.env_names():
        monkeypatch.delenv(name, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, str(value))
    return load_settings()


def _assert_known_settings(env_names: set[str]) -> None:
    known = Settings.env_names()
    unknown = {n for n in env_names if n.startswith("SCAMWATCH_")} - known
    assert not unknown, f"variables engine.settings does not read: {sorted(unknown)}"


# --- every file ---------------------------------------------------------------------------


def test_every_yaml_file_under_deploy_parses() -> None:
    expected = {
        "compose.yaml",
        "prometheus.yml",
        "rules.yml",
        "deployment.yaml",
        "kustomization.yaml",
    }
    assert expected <= {p.name for p in YAML_FILES}
    for path in YAML_FILES:
        docs = _load_yaml(path)
        assert docs, f"{path} is empty"
        assert all(isinstance(doc, dict) for doc in docs), path


def test_the_helper_recognises_metric_names_and_unbalanced_expressions() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (stream, le) (rate(x_bucket{stream=~"$s", a="b(c"}'
        "[$__rate_interval]))) / on (job) group_left y offset 5m > bool 0.25 and z:rec:rate5m"
    )
    assert _promql_names(expr) == {"x_bucket", "y", "z:rec:rate5m"}
    assert _promql_balanced(expr)
    assert not _promql_balanced("sum(rate(x[5m])")
    assert not _promql_balanced("sum(rate(x[5m)))")
    assert not _promql_balanced('x{a="b"')


# --- Docker Compose -----------------------------------------------------------------------


def test_compose_runs_kafka_kraft_redis_workers_prometheus_and_grafana() -> None:
    services = _compose()["services"]
    assert {"kafka", "redis", "prometheus", "grafana"} <= set(services)
    workers = {name: s for name, s in services.items() if name.startswith("worker")}
    assert 1 <= len(workers) <= 2
    kafka = services["kafka"]
    assert kafka["image"] == "apache/kafka:4.1.1"
    env = kafka["environment"]
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_CONTROLLER_LISTENER_NAMES"] in env["KAFKA_LISTENERS"]
    assert str(env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"]) == "1"
    assert services["redis"]["image"].startswith("redis:")
    for worker in workers.values():
        assert worker["build"]["dockerfile"] == "deploy/Dockerfile"
        assert (DEPLOY / worker["build"]["context"] / worker["build"]["dockerfile"]).is_file()
        assert worker["command"] == ["worker"]


def test_compose_workers_have_the_design_settings_and_valid_values(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    services = _compose()["services"]
    kafka_env = services["kafka"]["environment"]
    advertised = dict(
        item.split("://", 1) for item in kafka_env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    )
    for name, service in services.items():
        if not name.startswith("worker"):
            continue
        env = {k: str(v) for k, v in service["environment"].items()}
        assert set(env) >= DESIGN_SETTINGS, DESIGN_SETTINGS - set(env)
        _assert_known_settings(set(env))
        settings = _settings_from_env(env, monkeypatch)
        # the workers reach Kafka on the listener advertised inside the compose network
        assert settings.kafka.bootstrap in advertised.values()
        host = settings.kafka.bootstrap.split(":")[0]
        assert host in services
        assert settings.redis.url.get_secret_value().startswith("redis://redis:")
        assert settings.worker.web_bind == settings.worker.metrics_bind == "0.0.0.0"
        assert str(settings.worker.metrics_port) in service["expose"]
        assert str(settings.worker.web_port) in service["expose"]
        assert f"127.0.0.1:{settings.worker.web_port}/" in " ".join(service["healthcheck"]["test"])
        assert service["depends_on"]["redis"]["condition"] == "service_healthy"


def test_compose_creates_the_topics_the_workers_use() -> None:
    services = _compose()["services"]
    init = services["kafka-init"]
    script = " ".join(init["command"])
    created = set(re.search(r"for topic in ([\w .-]+?); do", script).group(1).split())  # type: ignore[union-attr]
    worker_env = next(s for n, s in services.items() if n.startswith("worker"))["environment"]
    used = {worker_env[f"SCAMWATCH_TOPIC_{t}"] for t in ("CALLS", "WEB", "ALERTS", "DEADLETTER")}
    assert created == used
    assert "--if-not-exists" in script
    assert init["depends_on"]["kafka"]["condition"] == "service_healthy"


def test_compose_references_exist_and_dollars_are_escaped() -> None:
    compose = _compose()
    services = compose["services"]
    text = (DEPLOY / "compose.yaml").read_text()
    # compose interpolates $NAME and ${NAME}: shell variables must be written $$NAME
    bare = re.findall(r"(?<!\$)\$(?!\$|\{)\w+", text.replace("$$", ""))
    assert not bare, f"unescaped $ in compose.yaml: {bare}"
    for name, service in services.items():
        depends = service.get("depends_on", [])
        assert set(depends) <= set(services), name
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name}: {source} does not exist"
            else:
                assert source in compose["volumes"], f"{name}: volume {source} is not declared"


def test_prometheus_scrapes_every_compose_worker_on_its_metrics_port() -> None:
    services = _compose()["services"]
    (config,) = _load_yaml(DEPLOY / "prometheus" / "prometheus.yml")
    targets = {
        target
        for job in config["scrape_configs"]
        for static in job["static_configs"]
        for target in static["targets"]
    }
    expected = {
        f"{name}:{s['environment']['SCAMWATCH_METRICS_PORT']}"
        for name, s in services.items()
        if name.startswith("worker")
    }
    assert targets == expected
    # rules.yml's ScamwatchWorkerDown reads up{job="scamwatch"}
    assert [job["job_name"] for job in config["scrape_configs"]] == ["scamwatch"]
    mounted = " ".join(services["prometheus"]["volumes"])
    for rule_file in config["rule_files"]:
        assert f"./prometheus/{Path(rule_file).name}:{rule_file}" in mounted


def test_grafana_is_provisioned_with_prometheus_and_the_dashboard() -> None:
    grafana = _compose()["services"]["grafana"]
    mounted = {v.split(":")[1]: v.split(":")[0] for v in grafana["volumes"]}
    provisioning = DEPLOY / mounted["/etc/grafana/provisioning"]
    (datasources,) = _load_yaml(provisioning / "datasources" / "prometheus.yml")
    (source,) = datasources["datasources"]
    assert source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"
    (dashboards,) = _load_yaml(provisioning / "dashboards" / "scamwatch.yml")
    folder = dashboards["providers"][0]["options"]["path"]
    dashboard_files = [src for dst, src in mounted.items() if dst.startswith(folder + "/")]
    assert dashboard_files == ["./grafana/scamwatch-dashboard.json"]


# --- Dockerfile ---------------------------------------------------------------------------


def test_dockerfile_installs_the_package_and_runs_a_worker() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    instructions = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert instructions[0] == "FROM python:3.11-slim"
    assert re.search(r"^RUN pip install \.(\s|$)", text, re.M)
    assert 'ENTRYPOINT ["scamwatch"]' in text
    assert 'CMD ["worker"]' in text
    exposed = set(re.search(r"^EXPOSE (.+)$", text, re.M).group(1).split())  # type: ignore[union-attr]
    defaults = {WorkerSettings.model_fields[f].default for f in ("web_port", "metrics_port")}
    assert exposed == {str(port) for port in defaults}
    assert "SCAMWATCH_WEB_BIND=0.0.0.0" in text
    assert re.search(r"^USER (?!root)\S+", text, re.M), "the worker must not run as root"
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    for line in re.findall(r"^COPY (.+) \S+$", text, re.M):
        for source in line.split():
            assert (REPO / source).exists(), f"COPY {source}: not in the repository"
            assert f"!{source}" in ignore, f"{source} is excluded from the build context"


# --- Kubernetes ---------------------------------------------------------------------------


def test_k8s_objects_are_well_formed_and_listed_in_the_kustomization() -> None:
    files = sorted(K8S.glob("*.yaml"))
    kustomization = _load_yaml(K8S / "kustomization.yaml")[0]
    assert sorted(kustomization["resources"]) == sorted(
        p.name for p in files if p.name != "kustomization.yaml"
    )
    kinds = set()
    for path in files:
        for doc in _load_yaml(path):
            assert {"apiVersion", "kind"} <= set(doc), path
            kinds.add(doc["kind"])
            if doc["kind"] != "Kustomization":
                assert doc["metadata"]["name"], path
    expected = {"Deployment", "ConfigMap", "Secret", "Service", "PodDisruptionBudget"}
    assert expected <= kinds


def test_k8s_probes_and_scrape_annotation_point_at_ports_the_container_exposes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    objects = _k8s_objects()
    pod = objects["Deployment"]["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        port = container[probe]["httpGet"]["port"]
        assert port in ports or port in ports.values(), f"{probe} port {port} is not exposed"
        assert ports.get(port, port) == ports["web"], f"{probe} is not on the web port"
    annotations = pod["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) == ports["metrics"]
    # the ports the container declares are the ones the worker is configured to listen on
    config = objects["ConfigMap"]["data"]
    secret = objects["Secret"]["stringData"]
    settings = _settings_from_env({**config, **secret}, monkeypatch)
    assert settings.worker.web_port == ports["web"]
    assert settings.worker.metrics_port == ports["metrics"]
    assert settings.worker.web_bind == settings.worker.metrics_bind == "0.0.0.0"


def test_k8s_settings_come_from_the_configmap_and_credentials_from_the_secret() -> None:
    objects = _k8s_objects()
    (container,) = objects["Deployment"]["spec"]["template"]["spec"]["containers"]
    refs = {
        key: source[key]["name"]
        for source in container["envFrom"]
        for key in ("configMapRef", "secretRef")
        if key in source
    }
    assert refs == {
        "configMapRef": objects["ConfigMap"]["metadata"]["name"],
        "secretRef": objects["Secret"]["metadata"]["name"],
    }
    config = set(objects["ConfigMap"]["data"])
    secret = set(objects["Secret"]["stringData"])
    _assert_known_settings(config | secret)
    assert secret >= SECRET_SETTINGS
    assert not config & (SECRET_SETTINGS | {"SCAMWATCH_KAFKA_SASL_USERNAME"})
    assert config >= (DESIGN_SETTINGS - SECRET_SETTINGS)


def test_k8s_service_pdb_and_hpa_select_the_worker_pods() -> None:
    objects = _k8s_objects()
    deployment = objects["Deployment"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    port_names = {p["name"] for p in container["ports"]}
    service = objects["Service"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= port_names
    assert service["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    pdb = objects["PodDisruptionBudget"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    hpa = objects["HorizontalPodAutoscaler"]
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert hpa["spec"]["minReplicas"] >= 2  # with maxUnavailable 1, a drain keeps one worker


# --- Prometheus rules ---------------------------------------------------------------------


def test_rules_use_only_the_design_metric_names_and_balanced_expressions() -> None:
    exported = _exported_sample_names()
    assert exported >= DESIGN_METRICS, "engine.metrics lacks a DESIGN.md metric"
    rules = _rules()
    recorded = {r["record"] for r in rules if "record" in r}
    for rule in rules:
        expr = rule["expr"]
        assert _promql_balanced(expr), expr
        names = _promql_names(expr)
        assert names, f"no metric in {expr!r}"
        for name in names:
            if ":" in name:
                assert name in recorded, f"{name} is not a recording rule of rules.yml"
                continue
            if name in PROMETHEUS_METRICS:
                continue
            assert name in exported, f"{name} is not exported by engine.metrics"
            assert _base_name(name, RULE_METRICS) in RULE_METRICS, f"{name}: not in DESIGN.md"
    for name in recorded:
        assert re.fullmatch(r"scamwatch:[a-z0-9_]+:[a-z0-9_]+", name), name


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    promtool = shutil.which("promtool")
    if promtool is None:  # `make tools` installs it; missing, the rules go unchecked: fail
        pytest.fail("promtool is not installed: run `make tools`", False)
    return subprocess.run(
        [promtool, *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        cwd=DEPLOY / "prometheus",
    )


def test_promtool_accepts_the_rules() -> None:
    result = _promtool("check", "rules", "rules.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(_rules())} rules found" in result.stdout


def test_promtool_unit_tests_of_every_alert_pass() -> None:
    (tests,) = _load_yaml(DEPLOY / "prometheus" / "rules.test.yml")
    assert tests["rule_files"] == ["rules.yml"]
    alerts = {r["alert"] for r in _rules() if "alert" in r}
    cases = [case for test in tests["tests"] for case in test.get("alert_rule_test", [])]
    firing = {c["alertname"] for c in cases if c["exp_alerts"]}
    silent = {c["alertname"] for c in cases if not c["exp_alerts"]}
    assert firing == alerts, f"no case where it fires: {alerts - firing}"
    assert silent == alerts, f"no case where it must not fire: {alerts - silent}"
    for needed in ("ScamwatchWorkerDown", "ScamwatchIndicatorStoreDown",
                   "ScamwatchDeadLetterRatioHigh", "ScamwatchConsumerLagHigh",
                   "ScamwatchNoEvents"):  # fmt: skip
        assert needed in alerts, needed
    result = _promtool("test", "rules", "rules.test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_rules_alert_on_what_operators_need() -> None:
    rules = {r.get("alert") or r["record"]: r for r in _rules()}
    alerts = {name: r for name, r in rules.items() if "alert" in r}
    for name, rule in alerts.items():
        assert rule["labels"]["severity"] in {"info", "warning", "critical"}, name
        assert rule["annotations"]["summary"], name
        assert re.fullmatch(r"\d+[smh]", rule["for"]), name

    def expanded(name: str) -> str:
        # an alert's expression with the recording rules it uses written out
        expr: str = rules[name]["expr"]
        for record, rule in rules.items():
            if ":" in record:
                expr = expr.replace(record, f"({rule['expr']})")
        return " ".join(expr.split())

    store = expanded("ScamwatchIndicatorStoreDown")
    assert "scamwatch_indicator_store_up == 0" in store
    assert alerts["ScamwatchIndicatorStoreDown"]["for"] == "1m"
    assert 'outcome="deadletter"' in expanded("ScamwatchDeadLetterRatioHigh")
    assert expanded("ScamwatchDeadLetterRatioHigh").endswith("> 0.01")
    latency = expanded("ScamwatchEventLatencyHigh")
    assert "histogram_quantile(0.99" in latency
    assert "scamwatch_event_latency_seconds_bucket" in latency
    assert latency.endswith("> 0.25")
    skew = expanded("ScamwatchIndicatorVersionSkew")
    assert "max by (job) (scamwatch_indicator_version)" in skew
    assert "min by (job) (scamwatch_indicator_version)" in skew
    assert alerts["ScamwatchIndicatorVersionSkew"]["for"] == "1m"
    assert "rate(scamwatch_events_total" in expanded("ScamwatchNoEvents")
    assert alerts["ScamwatchNoEvents"]["for"] == "5m"
    assert expanded("ScamwatchWorkerDown") == 'up{job="scamwatch"} == 0'
    lag = expanded("ScamwatchConsumerLagHigh")
    assert "max by (topic, partition) (scamwatch_consumer_lag)" in lag


# --- Grafana dashboard --------------------------------------------------------------------


def test_dashboard_queries_only_exported_metrics_and_shows_every_design_metric() -> None:
    exported = _exported_sample_names()
    dashboard = _dashboard()
    assert dashboard["uid"] == "scamwatch"
    panels = [p for p in _panels(dashboard["panels"]) if p["type"] != "row"]
    assert len({p["id"] for p in _panels(dashboard["panels"])}) == len(
        list(_panels(dashboard["panels"]))
    )
    shown: set[str] = set()
    for panel in panels:
        assert panel["title"] and panel["gridPos"]["w"] > 0, panel.get("title")
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            expr = target["expr"]
            assert _promql_balanced(expr), expr
            names = _promql_names(expr)
            assert names, f"{panel['title']}: no metric in {expr!r}"
            unknown = names - exported
            assert not unknown, f"{panel['title']}: not exported by engine.metrics: {unknown}"
            shown.update(_base_name(n, DESIGN_METRICS) for n in names)
    assert shown >= DESIGN_METRICS, f"no panel shows {DESIGN_METRICS - shown}"
    for variable in dashboard["templating"]["list"]:
        query = variable.get("definition", "")
        for name in re.findall(r"label_values\(\s*([A-Za-z_:][\w:]*)", query):
            assert name in exported, f"variable {variable['name']}: {name} is not exported"


def test_dashboard_uses_the_provisioned_datasource_variable() -> None:
    dashboard = _dashboard()
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["query"] == "prometheus"
    for panel in _panels(dashboard["panels"]):
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        for target in panel["targets"]:
            for variable in re.findall(r"\$(\w+)", target["expr"]):
                assert variable.startswith("__") or variable in variables, variable
