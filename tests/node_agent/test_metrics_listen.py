"""`metrics.listen` / NODUS_AGENT_METRICS_LISTEN / `run --metrics-listen`: off by default, a
strict HOST:PORT, refused on the health port, and a bad value stops `run` with the reason."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from node_agent.cli import app
from node_agent.config import ConfigError, load_config, parse_host_port, with_metrics_listen
from tests.node_agent.test_config import MINIMAL, write

POOLS = '[pools]\nipv4 = "10.8.0.0/16"\nipv6 = "fd00:8::/112"\n'


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("127.0.0.1:9464", ("127.0.0.1", 9464)),
        ("0.0.0.0:9464", ("0.0.0.0", 9464)),
        ("[::]:9464", ("::", 9464)),
        ("[::1]:1", ("::1", 1)),
        ("[fd00::0001]:65535", ("fd00::1", 65535)),
        ("localhost:9464", ("localhost", 9464)),
        ("node-1.example.net:9464", ("node-1.example.net", 9464)),
        ("", None),
    ],
)
def test_a_good_address_is_parsed(value: str, expected: tuple[str, int] | None) -> None:
    assert parse_host_port(value, "metrics.listen") == expected


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("9464", "no port"),
        (":9464", "no host"),
        ("127.0.0.1:", "the port must be a number from 1 to 65535"),
        ("127.0.0.1:0", "the port must be a number from 1 to 65535"),
        ("127.0.0.1:65536", "the port must be a number from 1 to 65535"),
        ("127.0.0.1:http", "the port must be a number from 1 to 65535"),
        ("127.0.0.1:+9464", "the port must be a number from 1 to 65535"),
        ("127.0.0.1:9464\n", "the port must be a number from 1 to 65535"),
        ("::1:9464", "an IPv6 address goes in brackets, e.g. [::1]:9464"),
        ("[::1:9464", "an IPv6 address goes in brackets, e.g. [::1]:9464"),
        ("[1.2.3.4]:9464", "'1.2.3.4' is not an IPv6 address"),
        ("999.1.1.1:9464", "'999.1.1.1' is not an IPv4 address"),
        ("1.2.3:9464", "'1.2.3' is not an IPv4 address"),
        (" 127.0.0.1:9464", "' 127.0.0.1' is not an address or a host name"),
        ("-node.example:9464", "'-node.example' is not an address or a host name"),
        ("node_1:9464", "'node_1' is not an address or a host name"),
        ("http://127.0.0.1:9464", "an address, not a URL: no scheme, no path"),
        ("127.0.0.1:9464/metrics", "an address, not a URL: no scheme, no path"),
    ],
)
def test_a_bad_address_is_refused_with_what_is_wrong(value: str, problem: str) -> None:
    with pytest.raises(ConfigError) as refused:
        parse_host_port(value, "metrics.listen")
    assert str(refused.value) == (
        "metrics.listen: expected HOST:PORT such as 127.0.0.1:9464 or [::]:9464, "
        f"got {value!r} ({problem})"
    )


def test_off_by_default_and_set_by_the_file_or_the_environment(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, MINIMAL), {}).metrics_listen is None
    in_file = MINIMAL + '[metrics]\nlisten = "127.0.0.1:9464"\n'
    assert load_config(write(tmp_path, in_file), {}).metrics_listen == ("127.0.0.1", 9464)
    environ = {"NODUS_AGENT_METRICS_LISTEN": "[::]:9100"}
    assert load_config(write(tmp_path, in_file), environ).metrics_listen == ("::", 9100)
    # An empty variable turns off what the file turned on.
    assert (
        load_config(write(tmp_path, in_file), {"NODUS_AGENT_METRICS_LISTEN": ""}).metrics_listen
        is None
    )


@pytest.mark.parametrize(
    ("text", "environ", "message"),
    [
        (MINIMAL + "[metrics]\nlisten = 9464\n", {}, "metrics.listen: expected a string"),
        (MINIMAL + '[metrics]\nport = "9464"\n', {}, "unknown option(s): metrics.port"),
        (MINIMAL, {"NODUS_AGENT_METRICS_LISTEN": "9464"}, "metrics.listen: expected HOST:PORT"),
        (
            MINIMAL + '[health]\nlisten = "0.0.0.0:9464"\n',
            {"NODUS_AGENT_METRICS_LISTEN": "127.0.0.1:9464"},
            "metrics.listen: port 9464 is the health endpoint's (health.listen)",
        ),
        (
            MINIMAL,  # health on the endpoint's port, the default
            {
                "NODUS_AGENT_ENDPOINT": "198.51.100.7:51820",
                "NODUS_AGENT_METRICS_LISTEN": "127.0.0.1:51820",
            },
            "metrics.listen: port 51820 is the health endpoint's",
        ),
    ],
)
def test_a_bad_setting_names_the_option(
    tmp_path: Path, text: str, environ: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(write(tmp_path, text), environ)


def test_the_run_flag_overrides_the_config(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL + '[metrics]\nlisten = "127.0.0.1:9464"\n'), {})
    assert with_metrics_listen(config, None).metrics_listen == ("127.0.0.1", 9464)
    assert with_metrics_listen(config, "[::1]:9500").metrics_listen == ("::1", 9500)
    assert with_metrics_listen(config, "").metrics_listen is None
    with pytest.raises(ConfigError, match=re.escape("--metrics-listen: expected HOST:PORT")):
        with_metrics_listen(config, "localhost")


def test_run_refuses_a_bad_flag_before_starting_anything(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + POOLS)
    result = CliRunner().invoke(
        app, ["run", "--config", str(path), "--metrics-listen", "::1:9464"], env={}
    )
    assert result.exit_code == 2
    output = " ".join(result.output.split())  # rich wraps long lines
    assert "--metrics-listen: expected HOST:PORT" in output
    assert "an IPv6 address goes in brackets, e.g. [::1]:9464" in output
