"""grafana/docker-compose.yml, checked for structure (no Docker on the CI machine)."""

from __future__ import annotations

from pathlib import Path

import yaml

from loadcaller import metrics as m

from .helpers import GRAFANA

COMPOSE = yaml.safe_load((GRAFANA / "docker-compose.yml").read_text())


def test_services_and_ports():
    services = COMPOSE["services"]
    assert set(services) == {"prometheus", "grafana", "pushgateway"}
    for name, svc in services.items():
        assert svc["image"].split(":")[1] not in ("", "latest"), f"{name}: pin the image"
        # loadcaller, the proxy's control API and the agent listen on 127.0.0.1
        assert svc["network_mode"] == "host", name
    assert "--web.listen-address=127.0.0.1:9090" in services["prometheus"]["command"]
    assert "--web.listen-address=127.0.0.1:9091" in services["pushgateway"]["command"]
    assert services["grafana"]["environment"]["GF_SERVER_HTTP_PORT"] == "3000"


def test_every_mount_points_at_what_it_should():
    services = COMPOSE["services"]
    named = set(COMPOSE.get("volumes") or {})
    for name, svc in services.items():
        for mount in svc.get("volumes", []):
            source = mount.split(":")[0]
            if source.startswith("."):
                assert (GRAFANA / source).exists(), f"{name}: {source} does not exist"
            else:
                assert source in named, f"{name}: volume {source} is not declared"
    prom = {m.split(":")[1]: GRAFANA / m.split(":")[0]
            for m in services["prometheus"]["volumes"] if m.startswith(".")}
    config = yaml.safe_load(prom["/etc/prometheus/prometheus.yml"].read_text())
    for rule_file in config["rule_files"]:  # relative to the config inside the container
        inside = Path("/etc/prometheus") / rule_file
        mount = next(t for t in prom if inside.is_relative_to(t) and t != str(inside))
        assert (prom[mount] / inside.relative_to(mount)).is_file(), rule_file
    graf = {m.split(":")[1]: GRAFANA / m.split(":")[0]
            for m in services["grafana"]["volumes"] if m.startswith(".")}
    provider = yaml.safe_load(
        (graf["/etc/grafana/provisioning/dashboards"] / "loadcaller.yaml").read_text())
    path = provider["providers"][0]["options"]["path"]
    assert list(graf[path].glob("*.json")), "the provider's path holds no dashboard"
    home = services["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (graf[path] / Path(home).relative_to(path)).is_file()
    assert list((graf["/etc/grafana/provisioning/datasources"]).glob("*.yaml"))


def test_prometheus_scrapes_the_ports_loadcaller_uses():
    from loadcaller.swarm.options import DEFAULT_METRICS_PORT

    assert DEFAULT_METRICS_PORT == m.METRICS_PORT
    config = yaml.safe_load((GRAFANA / "prometheus" / "prometheus.yml").read_text())
    targets = {job["job_name"]: job["static_configs"][0]["targets"]
               for job in config["scrape_configs"]}
    assert targets["loadcaller"] == [f"127.0.0.1:{m.METRICS_PORT}"]
    assert targets["chaos"] == [f"127.0.0.1:{m.CHAOS_CONTROL_PORT}"]
    assert targets["agent"] == [f"127.0.0.1:{m.AGENT_METRICS_PORT}"]
    assert targets["pushgateway"] == ["127.0.0.1:9091"]
