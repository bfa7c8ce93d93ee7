"""Grafana dashboards as code (grafanalib); `make dashboards` writes their JSON to dashboards/out/."""
