"""System routes through the real clients: ping, version negotiation, errors."""

from __future__ import annotations

from typing import Any

from tests.compat.conftest import ApiServer, DockerCli


def test_docker_version_negotiates_down_to_the_servers_api(
    api: ApiServer, docker: DockerCli
) -> None:
    res = docker("version", "--format", "{{.Server.APIVersion}} {{.Client.APIVersion}}")
    assert res.returncode == 0, res.stderr
    server_version, client_version = res.stdout.split()
    assert server_version == "1.44"
    assert client_version == "1.44"  # negotiated down from the client's own


def test_sdk_ping_and_version(client: Any) -> None:
    assert client.ping() is True
    assert client.version()["ApiVersion"] == "1.44"
