"""`nodus account new|import|show` and `nodus login` against the real chain and the real control
plane (uvicorn, real PostgreSQL): the keystore's format and mode, wrong passwords, the token
cache's mode, its reuse, and its renewal after expiry and after a 401."""

from __future__ import annotations

import json
import stat
import time
from pathlib import Path
from typing import Any

from eth_account import Account

from control_plane.chain.contracts import Deployment, Web3Client
from control_plane.settings import Settings
from tests.cli.conftest import Cli, ServedControlPlane, flat
from tests.e2e.stack import free_tcp_port, until
from tests.support.builders import NDS, fresh_wallet

PASSWORD = "correct horse battery"


def xdg(cli: Cli) -> Path:
    value = cli.env["XDG_CONFIG_HOME"]
    assert value is not None
    return Path(value) / "nodus"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def tokens(cli: Cli) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads((xdg(cli) / "tokens.json").read_text())
    return parsed


async def test_account_new_writes_a_0600_standard_keystore_and_show_reads_balances(
    cli: Cli, w3: Web3Client, deployment: Deployment
) -> None:
    with_password = {"NODUS_KEYSTORE_PASSWORD": PASSWORD}
    created = await cli("account", "new", env=with_password)
    assert created.exit_code == 0, created.output
    address = created.stdout.split("address:")[1].split()[0]
    keystore = xdg(cli) / "keystore.json"
    assert mode(keystore) == 0o600
    assert mode(keystore.parent) == 0o700
    # The standard JSON keystore: any Ethereum tool decrypts it with the password.
    key = Account.decrypt(json.loads(keystore.read_text()), PASSWORD)
    assert Account.from_key(key).address == address

    again = await cli("account", "new", env=with_password)
    assert again.exit_code == 2
    assert "already exists" in flat(again)
    assert Account.decrypt(json.loads(keystore.read_text()), PASSWORD) == key  # untouched

    empty = await cli("account", "show", "--json")  # no password needed to show
    assert empty.exit_code == 0, empty.output
    assert json.loads(empty.stdout) == {"address": address, "eth_wei": "0", "nds_wei": "0"}

    # An imported funded key replaces it (--force); show reads its balances.
    funded = await fresh_wallet(w3, deployment, 3 * NDS)
    imported = await cli("account", "import", "--force", "--json", key=funded, env=with_password)
    assert imported.exit_code == 0, imported.output
    assert json.loads(imported.stdout) == {"address": funded.address, "keystore": str(keystore)}
    shown = await cli("account", "show")
    assert shown.exit_code == 0, shown.output
    assert funded.address in shown.stdout
    assert "NDS:     3 NDS" in shown.stdout
    assert "ETH:     1 ETH" in shown.stdout

    wrong = await cli("login", env={"NODUS_KEYSTORE_PASSWORD": "nope"})
    assert wrong.exit_code == 2
    assert "wrong password" in flat(wrong)
    assert PASSWORD not in wrong.output


async def test_import_refuses_without_a_key_and_keeps_key_file_and_env_working(
    cli: Cli, tmp_path: Path
) -> None:
    nothing = await cli("account", "import", env={"NODUS_KEYSTORE_PASSWORD": PASSWORD})
    assert nothing.exit_code == 2
    assert "--key-file" in flat(nothing)

    account = Account.create()
    key_file = tmp_path / "key.hex"
    key_file.write_text(account.key.hex())
    key_file.chmod(0o600)
    imported = await cli(
        "account", "import", "--key-file", str(key_file), env={"NODUS_KEYSTORE_PASSWORD": PASSWORD}
    )
    assert imported.exit_code == 0, imported.output
    assert account.address in imported.stdout
    # NODUS_PRIVATE_KEY still wins over the keystore.
    other = Account.create()
    shown = await cli("account", "show", "--json", key=other)
    assert json.loads(shown.stdout)["address"] == other.address


async def test_login_caches_a_0600_token_reuses_it_and_renews_it_after_a_401(
    cli: Cli, served_api: ServedControlPlane
) -> None:
    account = Account.create()
    env = {"NODUS_API_URL": served_api.url}
    first = await cli("login", "--json", key=account, env=env)
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["address"] == account.address
    cache = xdg(cli) / "tokens.json"
    assert mode(cache) == 0o600
    (entry,) = tokens(cli).values()

    reused = await cli("login", key=account, env=env)
    assert reused.exit_code == 0, reused.output
    assert list(tokens(cli).values()) == [entry]

    # A token the server does not accept (another server's, or its secret changed): the real
    # API answers 401, and the command signs in again and succeeds.
    forged = {k: {**v, "access_token": "not-a-jwt"} for k, v in tokens(cli).items()}
    cache.write_text(json.dumps(forged))
    renewed = await cli("login", key=account, env=env)
    assert renewed.exit_code == 0, renewed.output
    (after,) = tokens(cli).values()
    assert after["access_token"] not in ("not-a-jwt", entry["access_token"])
    assert mode(cache) == 0o600


async def test_an_expired_token_is_renewed_before_use(
    cli: Cli, settings: Settings, deployment: Deployment, tmp_path: Path
) -> None:
    short = ServedControlPlane(
        settings, tmp_path, free_tcp_port(), extra={"NODUS_ACCESS_TOKEN_TTL_SECONDS": "3"}
    )
    await short.start()
    try:
        account = Account.create()
        env = {"NODUS_API_URL": short.url}
        first = await cli("login", key=account, env=env)
        assert first.exit_code == 0, first.output
        (entry,) = tokens(cli).values()
        assert entry["expires_at"] - entry["renew_at"] > 0
        await until(lambda: time.time() > entry["expires_at"], 10, "the token to expire")
        again = await cli("login", key=account, env=env)
        assert again.exit_code == 0, again.output
        (after,) = tokens(cli).values()
        assert after["access_token"] != entry["access_token"]
        assert after["expires_at"] > entry["expires_at"]
    finally:
        await short.stop()


async def test_an_unreachable_api_or_chain_is_exit_code_4_with_the_next_step(cli: Cli) -> None:
    account = Account.create()
    api = await cli(
        "login", key=account, env={"NODUS_API_URL": f"http://127.0.0.1:{free_tcp_port()}"}
    )
    assert api.exit_code == 4
    assert "cannot reach the Nodus API" in flat(api)
    assert "next: start the control plane, or point --api-url" in flat(api)
    chain = await cli(
        "account", "show", key=account, env={"NODUS_RPC_URL": f"http://127.0.0.1:{free_tcp_port()}"}
    )
    assert chain.exit_code == 4
    assert "cannot reach the chain" in flat(chain)
