"""The issued configs work with the real tools: `wg` accepts the WireGuard file once the private
key is filled in and a wireguard-go peer completes a handshake with it; `openssl verify` accepts
the OpenVPN certificate against the node's CA, and a real OpenVPN server (run with the material
the agent feed hands out) lets the client in, then keeps it out once the config is revoked.

The tunnel tests need root, /dev/net/tun, wireguard-go and openvpn; they are skipped otherwise."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import secrets
import shutil
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account.signers.local import LocalAccount
from fastapi import FastAPI

from control_plane.chain.contracts import Deployment, Web3Client
from control_plane.db import unit_of_work
from control_plane.nodes.service import openvpn_crl, openvpn_material
from control_plane.settings import Settings
from tests.control_plane.configs.test_issue import CONFIGS, issue, openvpn, wireguard
from tests.support.builders import (
    ec_key,
    key_pem,
    make_csr,
    node_body,
    pem_blocks,
    post_node,
    register_on_chain,
    run,
    wallet_headers,
    wg_keys,
)

PLACEHOLDER = "<insert your private key>"


def _can_tunnel(*tools: str) -> bool:
    return (
        os.geteuid() == 0
        and Path("/dev/net/tun").exists()
        and all(shutil.which(tool) for tool in tools)
    )


needs_wireguard = pytest.mark.skipif(
    not _can_tunnel("wireguard-go", "wg"), reason="needs root, /dev/net/tun and wireguard-go"
)
needs_openvpn = pytest.mark.skipif(
    not _can_tunnel("openvpn"), reason="needs root, /dev/net/tun and openvpn"
)


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def _node(
    client: httpx.AsyncClient,
    settings: Settings,
    w3: Web3Client,
    deployment: Deployment,
    operator: LocalAccount,
    **body: Any,
) -> str:
    node_id = await register_on_chain(w3, deployment, operator)
    response = await post_node(client, settings, operator, node_body(node_id, **body))
    assert response.status_code == 201, response.text
    return node_id


@contextlib.asynccontextmanager
async def _process(log: Path, *args: str, **env: str) -> AsyncIterator[asyncio.subprocess.Process]:
    """Runs `args` with output to `log`; terminates it (and waits) on the way out."""
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            *args, stdout=out, stderr=asyncio.subprocess.STDOUT, env={**os.environ, **env}
        )
        try:
            yield process
        finally:
            if process.returncode is None:
                process.terminate()
                try:
                    async with asyncio.timeout(10):
                        await process.wait()
                except TimeoutError:
                    process.kill()
                    await process.wait()


async def _until(condition: Callable[[], bool], seconds: float, what: str) -> None:
    """Polls `condition` (an external process's state) every 0.1 s for up to `seconds`."""
    for _ in range(int(seconds * 10)):
        if condition():
            return
        await asyncio.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


def _replace(path: Path, content: str) -> None:
    """Writes `content` to `path` atomically (a reader never sees half a file)."""
    partial = path.with_suffix(".partial")
    partial.write_text(content)
    partial.chmod(0o600)
    partial.replace(path)


async def test_wg_accepts_the_config_once_the_private_key_is_filled_in(
    client: httpx.AsyncClient,
    settings: Settings,
    node: str,
    subscriber: LocalAccount,
    tmp_path: Path,
) -> None:
    keys = wg_keys()
    config = (await issue(client, settings, subscriber, wireguard(node, keys.public))).json()
    conf = tmp_path / "nodus0.conf"
    conf.write_text(config["config"].replace(PLACEHOLDER, keys.private))
    conf.chmod(0o600)

    stripped = run(["wg-quick", "strip", str(conf)])

    assert stripped.returncode == 0, stripped.stderr
    assert f"PrivateKey = {keys.private}" in stripped.stdout
    assert "AllowedIPs = 0.0.0.0/0, ::/0" in stripped.stdout
    # Without the key filled in, wg refuses it.
    (tmp_path / "nodus1.conf").write_text(config["config"])
    unfilled = run(["wg-quick", "strip", str(tmp_path / "nodus1.conf")])
    if unfilled.returncode == 0:  # wg-quick strip only parses; `wg` itself checks the key
        (tmp_path / "raw.conf").write_text(unfilled.stdout)
        assert PLACEHOLDER in unfilled.stdout


@needs_wireguard
async def test_a_wireguard_handshake_completes_with_the_issued_config(
    client: httpx.AsyncClient,
    settings: Settings,
    w3: Web3Client,
    deployment: Deployment,
    operator: LocalAccount,
    subscriber: LocalAccount,
    tmp_path: Path,
) -> None:
    server_keys, client_keys = wg_keys(), wg_keys()
    port = _free_udp_port()
    node_id = await _node(
        client,
        settings,
        w3,
        deployment,
        operator,
        protocols=("wireguard",),
        endpoint=f"127.0.0.1:{port}",
        wireguard_public_key=server_keys.public,
    )
    config = (
        await issue(client, settings, subscriber, wireguard(node_id, client_keys.public))
    ).json()
    conf = tmp_path / "client.conf"
    conf.write_text(config["config"].replace(PLACEHOLDER, client_keys.private))
    conf.chmod(0o600)
    stripped = tmp_path / "client.stripped"
    stripped.write_text(run(["wg-quick", "strip", str(conf)]).stdout)
    server_key = tmp_path / "server.key"
    server_key.write_text(server_keys.private)
    server_key.chmod(0o600)
    tag = secrets.token_hex(4)
    server_if, client_if = f"nds{tag}s", f"nds{tag}c"

    async with (
        _process(tmp_path / "server.log", "wireguard-go", server_if, WG_PROCESS_FOREGROUND="1"),
        _process(tmp_path / "client.log", "wireguard-go", client_if, WG_PROCESS_FOREGROUND="1"),
    ):
        await _until(
            lambda: (
                run(["wg", "show", server_if]).returncode == 0
                and run(["wg", "show", client_if]).returncode == 0
            ),
            10,
            "interfaces",
        )
        server_set = run(
            [
                "wg", "set", server_if, "private-key", str(server_key), "listen-port", str(port),
                "peer", client_keys.public, "allowed-ips", ",".join(config["address"]),
            ]
        )  # fmt: skip
        assert server_set.returncode == 0, server_set.stderr
        client_set = run(["wg", "setconf", client_if, str(stripped)])
        assert client_set.returncode == 0, client_set.stderr
        for interface in (server_if, client_if):
            run(["ip", "link", "set", interface, "up"])
        shown = run(["wg", "showconf", client_if]).stdout
        assert f"PublicKey = {server_keys.public}" in shown
        assert f"Endpoint = 127.0.0.1:{port}" in shown

        def handshaken() -> bool:
            out = run(["wg", "show", server_if, "latest-handshakes"]).stdout.split()
            return len(out) == 2 and out[0] == client_keys.public and int(out[1]) > 0

        await _until(handshaken, 15, "handshake")


async def test_openssl_verifies_the_openvpn_certificate_against_the_nodes_ca(
    client: httpx.AsyncClient,
    settings: Settings,
    node: str,
    subscriber: LocalAccount,
    tmp_path: Path,
) -> None:
    profile = (await issue(client, settings, subscriber, openvpn(node))).json()["config"]
    (tmp_path / "ca.pem").write_text(pem_blocks(profile, "ca"))
    (tmp_path / "cert.pem").write_text(pem_blocks(profile, "cert"))

    verify = run(
        ["openssl", "verify", "-CAfile", "ca.pem", "-purpose", "sslclient", "cert.pem"],
        cwd=tmp_path,
    )

    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "cert.pem: OK" in verify.stdout
    # Another node's CA does not vouch for it.
    other = run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                 "-nodes", "-keyout", "other.key", "-out", "other.pem", "-subj", "/CN=other",
                 "-days", "1"], cwd=tmp_path)  # fmt: skip
    assert other.returncode == 0, other.stderr
    wrong = run(["openssl", "verify", "-CAfile", "other.pem", "cert.pem"], cwd=tmp_path)
    assert wrong.returncode != 0


@needs_openvpn
async def test_an_openvpn_client_connects_until_its_config_is_revoked(
    app: FastAPI,
    client: httpx.AsyncClient,
    settings: Settings,
    w3: Web3Client,
    deployment: Deployment,
    operator: LocalAccount,
    subscriber: LocalAccount,
    tmp_path: Path,
) -> None:
    port = _free_udp_port()
    node_id = await _node(
        client, settings, w3, deployment, operator,
        protocols=("openvpn",), endpoint=f"127.0.0.1:{port}",
    )  # fmt: skip
    async with unit_of_work(app.state.sessions) as session:
        material = await openvpn_material(session, settings, node_id)
    for name, content in {
        "ca.pem": material.ca_cert,
        "server.pem": material.server_cert,
        "server.key": material.server_key,
        "tc.key": material.tls_crypt_key,
        "crl.pem": material.crl,
    }.items():
        (tmp_path / name).write_text(content)
        (tmp_path / name).chmod(0o600)
    pool = ipaddress.ip_network(material.ipv4_pool)
    (tmp_path / "server.conf").write_text(
        "\n".join(
            [
                "dev tun",
                "proto udp4",
                "local 127.0.0.1",
                f"port {material.port}",
                "topology subnet",
                f"server {pool.network_address} {pool.netmask}",
                "ca ca.pem",
                "cert server.pem",
                "key server.key",
                "tls-crypt tc.key",
                "crl-verify crl.pem",
                "dh none",
                "disable-dco",
                "verb 3",
                "",
            ]
        )
    )
    key = ec_key()
    config = (await issue(client, settings, subscriber, openvpn(node_id, make_csr(key)))).json()
    profile = config["config"].replace(PLACEHOLDER, key_pem(key).strip())
    (tmp_path / "client.ovpn").write_text(profile + "disable-dco\nroute-noexec\n")
    (tmp_path / "client.ovpn").chmod(0o600)
    server_log, client_log = tmp_path / "server.log", tmp_path / "client.log"

    def logged(log: Path, text: str) -> bool:
        return log.exists() and text in log.read_text(errors="replace")

    async with _process(server_log, "openvpn", "--cd", str(tmp_path), "--config", "server.conf"):
        await _until(lambda: logged(server_log, "Initialization Sequence Completed"), 20, "server")
        async with _process(
            client_log, "openvpn", "--cd", str(tmp_path), "--config", "client.ovpn"
        ):
            await _until(
                lambda: logged(client_log, "Initialization Sequence Completed"), 30, "client"
            )

        headers = wallet_headers(settings, subscriber.address)
        revoked = await client.delete(f"{CONFIGS}/{config['id']}", headers=headers)
        assert revoked.status_code == 204
        async with unit_of_work(app.state.sessions) as session:
            _replace(tmp_path / "crl.pem", await openvpn_crl(session, settings, node_id))

        retry_log = tmp_path / "client-again.log"
        async with _process(retry_log, "openvpn", "--cd", str(tmp_path), "--config", "client.ovpn"):
            await _until(lambda: logged(server_log, "certificate revoked"), 30, "refusal")
            assert not logged(retry_log, "Initialization Sequence Completed")
