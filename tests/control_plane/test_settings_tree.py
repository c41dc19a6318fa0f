"""One settings tree: the nested sections still read their flat NODUS_* variable names, from
the environment and from `.env`, and an explicit value at start-up wins."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from control_plane.settings import ProberSettings, Settings

SECRETS = {"jwt_secret": "j" * 32, "api_key_secret": "a" * 32, "data_key": "d" * 32}

# (variable, value, where it lands, expected)
FLAT_NAMES = [
    ("NODUS_PROBER_ENABLED", "false", ("prober", "enabled"), False),
    ("NODUS_PROBER_NAME", "eu-1", ("prober", "name"), "eu-1"),
    ("NODUS_PROBER_INTERVAL_SECONDS", "7.5", ("prober", "interval_seconds"), 7.5),
    ("NODUS_PROBER_SAMPLES", "5", ("prober", "samples"), 5),
    ("NODUS_PROBER_TIMEOUT_SECONDS", "1", ("prober", "timeout_seconds"), 1.0),
    ("NODUS_PROBER_CONCURRENCY", "8", ("prober", "concurrency"), 8),
    ("NODUS_PROBER_ALLOW_PRIVATE_TARGETS", "true", ("prober", "allow_private_targets"), True),
    ("NODUS_PROBER_MAX_SAMPLE_AGE_SECONDS", "120", ("prober", "max_sample_age_seconds"), 120),
    ("NODUS_PROBER_POSTS_PER_MINUTE", "3", ("prober", "posts_per_minute"), 3),
    ("NODUS_PROBER_SAMPLES_PER_MINUTE", "30", ("prober", "samples_per_minute"), 30),
    (
        "NODUS_PROBER_CONTROL_PLANE_URL",
        "http://cp:8000",
        ("prober", "control_plane_url"),
        "http://cp:8000",
    ),
    ("NODUS_ORACLE_KEYSTORE_FILE", "/k.json", ("oracle", "oracle_keystore_file"), Path("/k.json")),
    (
        "NODUS_ORACLE_KEYSTORE_PASSWORD_FILE",
        "/pw",
        ("oracle", "oracle_keystore_password_file"),
        Path("/pw"),
    ),
    ("NODUS_TX_STUCK_SECONDS", "30", ("oracle", "tx_stuck_seconds"), 30.0),
    ("NODUS_TX_FEE_BUMP_BPS", "2000", ("oracle", "tx_fee_bump_bps"), 2000),
    ("NODUS_TX_MAX_FEE_GWEI", "9", ("oracle", "tx_max_fee_gwei"), 9),
    ("NODUS_TX_GAS_MARGIN_PERCENT", "10", ("oracle", "tx_gas_margin_percent"), 10),
    ("NODUS_TX_POLL_SECONDS", "0.05", ("oracle", "tx_poll_seconds"), 0.05),
    ("NODUS_TX_WAIT_TIMEOUT_SECONDS", "30", ("oracle", "tx_wait_timeout_seconds"), 30.0),
    ("NODUS_TX_SEND_INTERVAL_SECONDS", "3", ("oracle", "tx_send_interval_seconds"), 3.0),
    ("NODUS_EPOCH_SECONDS", "3600", ("reward_posting", "epoch_seconds"), 3600),
    (
        "NODUS_REWARD_ACCEPT_INTERVAL_SECONDS",
        "4",
        ("reward_posting", "reward_accept_interval_seconds"),
        4.0,
    ),
]


@pytest.fixture(autouse=True)
def no_dotenv(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no .env here unless a test writes one


@pytest.mark.parametrize(("name", "value", "where", "expected"), FLAT_NAMES)
def test_each_flat_variable_still_takes_effect(
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    value: str,
    where: tuple[str, str],
    expected: object,
) -> None:
    section, field = where
    default = getattr(getattr(Settings(**SECRETS), section), field)  # type: ignore[arg-type]
    assert default != expected
    monkeypatch.setenv(name, value)
    assert getattr(getattr(Settings(**SECRETS), section), field) == expected  # type: ignore[arg-type]


def test_secrets_of_the_sections_come_from_the_environment_and_stay_hidden(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NODUS_PROBER_KEY", "0x" + "11" * 32)
    monkeypatch.setenv("NODUS_ORACLE_PRIVATE_KEY", "0x" + "22" * 32)
    monkeypatch.setenv("NODUS_ORACLE_KEYSTORE_PASSWORD", "pw-of-the-oracle")
    settings = Settings(**SECRETS)  # type: ignore[arg-type]
    assert settings.prober.key == SecretStr("0x" + "11" * 32)
    assert settings.oracle.oracle_private_key == SecretStr("0x" + "22" * 32)
    assert settings.oracle.configured
    assert "22" * 32 not in repr(settings)
    assert "pw-of-the-oracle" not in repr(settings)


def test_the_dotenv_file_fills_the_sections_and_the_environment_wins(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text(
        "NODUS_PROBER_SAMPLES=4\nNODUS_TX_POLL_SECONDS=0.5\nNODUS_EPOCH_SECONDS=60\n"
    )
    monkeypatch.setenv("NODUS_EPOCH_SECONDS", "120")
    settings = Settings(**SECRETS)  # type: ignore[arg-type]
    assert settings.prober.samples == 4
    assert settings.oracle.tx_poll_seconds == 0.5
    assert settings.reward_posting.epoch_seconds == 120


def test_a_section_given_at_start_up_wins_over_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NODUS_PROBER_SAMPLES", "9")
    settings = Settings(**SECRETS, prober=ProberSettings(samples=2))  # type: ignore[arg-type]
    assert settings.prober.samples == 2


def test_a_bad_flat_value_is_refused_with_its_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NODUS_PROBER_SAMPLES", "11")  # at most 10
    with pytest.raises(ValueError, match=r"prober\.samples"):
        Settings(**SECRETS)  # type: ignore[arg-type]
