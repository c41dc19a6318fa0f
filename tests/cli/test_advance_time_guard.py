"""`--advance-time` moves anvil's clock; on any chain but a local one (chain id 31337) it is
refused before anything is read or sent. The other chain here is a real anvil started with
--chain-id 5 and the contracts deployed by scripts/deploy (with production parameters)."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from web3 import AsyncWeb3

from tests.cli.conftest import Cli, flat
from tests.support.devchain import ANVIL, deploy, dev_account


@pytest.fixture(scope="module")
def goerli_like(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen(
        [str(ANVIL), "--host", "127.0.0.1", "--port", str(port), "--chain-id", "5", "--silent"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    rpc_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.post(rpc_url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"})
                break
            except httpx.TransportError:
                assert process.poll() is None, "anvil exited"
                assert time.monotonic() < deadline, "anvil did not start"
                time.sleep(0.1)
        out_dir = tmp_path_factory.mktemp("deployments5")
        # Production requires the guardian to be named; without it nothing is deployed.
        holders = ",".join(dev_account(i).address for i in range(3))
        amounts = ",".join(str(n * 10**18) for n in (200_000_000, 100_000_000, 50_000_000))
        circulating = {"NODUS_HOLDERS": holders, "NODUS_HOLDER_NDS": amounts}
        with pytest.raises(subprocess.CalledProcessError) as refused:
            deploy(rpc_url, out_dir, circulating)
        assert "NODUS_GUARDIAN" in refused.value.stderr.decode()
        assert not (out_dir / "5.json").exists()
        # Production parameters: three holders share 350,000,000 NDS of circulating supply.
        deploy(rpc_url, out_dir, {**circulating, "NODUS_GUARDIAN": dev_account(2).address})
        assert (out_dir / "5.json").exists()
        yield rpc_url, out_dir
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.mark.parametrize(
    "command",
    [["vote", "1", "for"], ["queue", "1"], ["execute", "1"]],
    ids=["vote", "queue", "execute"],
)
async def test_advance_time_is_refused_on_another_chain(
    goerli_like: tuple[str, Path], command: list[str]
) -> None:
    rpc_url, deployments_dir = goerli_like
    w3 = AsyncWeb3(AsyncWeb3.AsyncHTTPProvider(rpc_url))
    assert await w3.eth.chain_id == 5
    before = await w3.eth.get_block("latest")

    cli = Cli({"NODUS_RPC_URL": rpc_url, "NODUS_DEPLOYMENTS_DIR": str(deployments_dir)})
    result = await cli("dao", *command, "--advance-time", key=dev_account(0))

    assert result.exit_code == 2
    assert "works only on a local chain (chain id 31337)" in flat(result)
    assert "has chain id 5" in flat(result)
    assert "Traceback" not in result.output
    after = await w3.eth.get_block("latest")
    assert (after["number"], after["timestamp"]) == (before["number"], before["timestamp"])
    await w3.provider.disconnect()
