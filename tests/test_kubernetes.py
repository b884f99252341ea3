"""contrib/kubernetes/: the PrometheusRule objects are the shipped alert rules of
contrib/prometheus/, verbatim, and promtool accepts them; the ServiceMonitor scrapes the
DaemonSet's metrics port. ``python -m tests.test_kubernetes`` writes the PrometheusRule file
again from contrib/prometheus/."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
K8S = REPO / "contrib" / "kubernetes"
RULE_FILE = K8S / "wgtrack-prometheusrule.yaml"
SHIPPED = (("wgtrack", "wgtrack.rules.yml"), ("wgtrack-fleet", "wgtrack-fleet.rules.yml"))
HEADER = """# The shipped alert rules (contrib/prometheus/) as PrometheusRule objects for the Prometheus
# Operator; each spec is that file's groups, verbatim. tests/test_kubernetes.py holds them equal
# and runs promtool on them: change contrib/prometheus/ first, then run
# `python -m tests.test_kubernetes` to write this file again.
"""


def prometheus_rules() -> str:
    """The PrometheusRule file's text, made from contrib/prometheus/ (comments kept)."""
    out = [HEADER]
    for name, rules in SHIPPED:
        text = (REPO / "contrib" / "prometheus" / rules).read_text()
        body = text[text.index("groups:"):]
        out.append(f"---\napiVersion: monitoring.coreos.com/v1\nkind: PrometheusRule\nmetadata:\n  name: {name}\n"
                   "  namespace: monitoring\n  labels: {app.kubernetes.io/name: wgtrack, release: prometheus}\n"
                   "spec:\n" + "".join("  " + line if line.strip() else line
                                        for line in body.splitlines(keepends=True)))
    return "".join(out)


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def test_the_prometheus_rules_are_the_shipped_ones() -> None:
    objects = documents(RULE_FILE)
    assert [(o["apiVersion"], o["kind"], o["metadata"]["name"]) for o in objects] == [
        ("monitoring.coreos.com/v1", "PrometheusRule", name) for name, _ in SHIPPED]
    for obj, (_, rules) in zip(objects, SHIPPED, strict=True):
        shipped = yaml.safe_load((REPO / "contrib" / "prometheus" / rules).read_text())
        assert obj["spec"] == shipped, f"{RULE_FILE.name} differs from {rules}: run python -m tests.test_kubernetes"
    assert RULE_FILE.read_text() == prometheus_rules()  # comments too


@pytest.mark.server
def test_promtool_accepts_the_prometheus_rules(tmp_path: Path) -> None:
    if shutil.which("promtool") is None:
        pytest.fail("needs promtool (make test installs prometheus)")
    files = []
    for obj in documents(RULE_FILE):
        spec = tmp_path / f"{obj['metadata']['name']}.yml"
        spec.write_text(yaml.safe_dump(obj["spec"]))
        files.append(str(spec))
    check = subprocess.run(["promtool", "check", "rules", *files], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.count("SUCCESS") == len(SHIPPED), check.stdout


def test_the_service_monitor_scrapes_the_daemonset_s_metrics_port() -> None:
    daemonset = next(d for d in documents(K8S / "wgtrack-daemonset.yaml") if d["kind"] == "DaemonSet")
    pod = daemonset["spec"]["template"]
    port = next(p for p in pod["spec"]["containers"][0]["ports"] if p["name"] == "metrics")
    by_kind = {d["kind"]: d for d in documents(K8S / "wgtrack-servicemonitor.yaml")}
    service, monitor = by_kind["Service"], by_kind["ServiceMonitor"]
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    assert service["spec"]["clusterIP"] == "None"  # one target per pod, which is one per node
    assert [(p["name"], p["port"]) for p in service["spec"]["ports"]] == [("metrics", port["containerPort"])]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["namespaceSelector"]["matchNames"] == [daemonset["metadata"]["namespace"]]
    endpoint = monitor["spec"]["endpoints"][0]
    assert endpoint["port"] == "metrics" and endpoint["path"] == "/metrics"
    relabel = endpoint["relabelings"][0]  # instance = the node's name, as the fleet rules' host label expects
    assert (relabel["sourceLabels"], relabel["targetLabel"]) == (["__meta_kubernetes_pod_node_name"], "instance")


if __name__ == "__main__":
    RULE_FILE.write_text(prometheus_rules())
    print(f"wrote {RULE_FILE}")
