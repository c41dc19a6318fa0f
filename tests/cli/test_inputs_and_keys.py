"""User input: amounts are exact, bad amounts and addresses are usage errors (exit 2, a clear
message, no traceback), and the signing key is loaded safely and never shown."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import typer
from eth_account import Account
from hypothesis import given
from hypothesis import strategies as st

from control_plane.chain.contracts import Deployment
from control_plane.paths import REPO_ROOT
from nodus_cli.support.output import format_nds
from nodus_cli.support.parsing import parse_address, parse_nds
from tests.cli.conftest import Cli, flat
from tests.support.devchain import dev_account

NODUS = REPO_ROOT / ".venv" / "bin" / "nodus"
ADDRESS = dev_account(9).address


@pytest.mark.parametrize(
    ("text", "wei"),
    [
        ("12", 12 * 10**18),
        ("12.5", 12_500_000_000_000_000_000),
        ("0.000000000000000001", 1),
        (".5", 5 * 10**17),
        ("1_000_000", 10**24),
        (
            "123456789012345678901234567890.123456789012345678",
            123456789012345678901234567890123456789012345678,
        ),
    ],
)
def test_amounts_convert_to_wei_exactly(text: str, wei: int) -> None:
    assert parse_nds(text) == wei


@given(st.integers(min_value=0, max_value=2**256 - 1))
def test_formatting_and_parsing_amounts_round_trip(wei: int) -> None:
    shown = format_nds(wei)
    assert shown.endswith(" NDS")
    assert parse_nds(shown.removesuffix(" NDS").replace(",", "")) == wei


@pytest.mark.parametrize(
    "text", ["12,5", "-1", "1e3", "12.5.1", "abc", "", "NaN", "1.0000000000000000001", str(2**256)]
)
def test_bad_amounts_are_rejected(text: str) -> None:
    with pytest.raises(typer.BadParameter):
        parse_nds(text)


def test_addresses_need_40_hex_digits_and_a_valid_checksum() -> None:
    assert parse_address(ADDRESS.lower()) == ADDRESS
    assert parse_address(ADDRESS) == ADDRESS
    broken = ADDRESS[:-1] + (ADDRESS[-1].swapcase() if ADDRESS[-1].isalpha() else "a")
    for bad in ("0x123", ADDRESS[2:], ADDRESS + "0", broken if broken != ADDRESS else "0xZZ"):
        with pytest.raises(typer.BadParameter):
            parse_address(bad)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["dao", "propose", "set-price", "12,5", "-d", "x"], "'12,5' is not an NDS amount"),
        (["dao", "propose", "set-epoch-budget", "12 NDS", "-d", "x"], "not an NDS amount"),
        (["dao", "propose", "set-epoch-budget", "-3", "-d", "x"], "No such option: -3"),
        (
            ["dao", "propose", "set-min-stake", "0.0000000000000000001", "-d", "x"],
            "more than 18 decimals",
        ),
        (["dao", "propose", "set-price", "0", "-d", "x"], "the price must be above 0"),
        (["dao", "delegate", "--to", "0x1234"], "is not an address"),
        (["dao", "propose", "set-oracle", "0x" + "aB" * 20, "-d", "x"], "wrong EIP-55 checksum"),
        (["dao", "propose", "revoke-root", "1", "0x1234", "-d", "x"], "is not a bytes32"),
        (["dao", "propose", "set-revenue-split", "10001", "-d", "x"], "10000"),
        (["dao", "vote", "12", "maybe"], "maybe"),
        (["dao", "status", "not-a-number"], "is not a proposal id"),
        (["rewards", "show", "--address", "0xnope"], "is not an address"),
    ],
)
def test_bad_input_is_a_usage_error_without_a_traceback(args: list[str], message: str) -> None:
    # The installed console script, as a user runs it; no chain is needed to reject input.
    env = {**os.environ, "NODUS_RPC_URL": "http://127.0.0.1:9", "COLUMNS": "200"}
    env.pop("NODUS_PRIVATE_KEY", None)
    result = subprocess.run(
        [str(NODUS), *args], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == 2, result.stderr
    assert message in " ".join(result.stderr.replace("│", " ").split())
    assert "Traceback" not in result.stderr + result.stdout


async def test_a_key_file_must_be_private(tmp_path: Path, cli: Cli, deployment: Deployment) -> None:
    key = dev_account(4)
    secret = key.key.hex()
    path = tmp_path / "key"
    path.write_text(secret + "\n")
    path.chmod(0o644)
    refused = await cli("dao", "delegate", "--key-file", str(path))
    assert refused.exit_code == 2
    assert "readable by others (mode 0644)" in flat(refused)
    assert "chmod 600" in flat(refused)
    assert secret.removeprefix("0x") not in refused.output

    path.chmod(0o600)
    accepted = await cli("dao", "delegate", "--key-file", str(path))
    assert accepted.exit_code == 0, accepted.output
    assert key.address in accepted.stdout
    assert secret.removeprefix("0x") not in accepted.output


async def test_an_encrypted_keystore_takes_its_passphrase_from_the_environment(
    tmp_path: Path, cli: Cli, deployment: Deployment
) -> None:
    key = dev_account(4)
    path = tmp_path / "keystore.json"
    path.write_text(json.dumps(Account.encrypt(key.key, "correct horse", iterations=2)))
    path.chmod(0o644)  # encrypted: its mode does not matter

    wrong = await cli("dao", "delegate", "--key-file", str(path), env={"NODUS_PASSPHRASE": "nope"})
    assert wrong.exit_code == 2
    assert "wrong password" in flat(wrong)
    missing = await cli("dao", "delegate", "--key-file", str(path))
    assert missing.exit_code == 2
    assert "NODUS_KEYSTORE_PASSWORD" in flat(missing)

    right = await cli(
        "dao", "delegate", "--key-file", str(path), env={"NODUS_PASSPHRASE": "correct horse"}
    )
    assert right.exit_code == 0, right.output
    assert key.address in right.stdout
    assert "correct horse" not in right.output


async def test_a_command_that_signs_says_where_the_key_comes_from(
    cli: Cli, deployment: Deployment
) -> None:
    none = await cli("dao", "delegate")
    assert none.exit_code == 2
    assert "--key-file" in flat(none)
    assert "NODUS_PRIVATE_KEY" in flat(none)
    bad = await cli("dao", "delegate", env={"NODUS_PRIVATE_KEY": "0xdeadbeef"})
    assert bad.exit_code == 2
    assert "does not hold a private key" in flat(bad)
    assert "deadbeef" not in bad.output


async def test_an_unreachable_chain_is_one_line_not_a_traceback(cli: Cli) -> None:
    result = await cli("dao", "status", "1", "--rpc-url", "http://127.0.0.1:9")
    assert result.exit_code == 4  # unreachable (support/exits.py)
    assert "cannot reach the chain at http://127.0.0.1:9" in flat(result)
