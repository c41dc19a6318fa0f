"""The options many `nodus` commands share, declared once.

Users type them after the command (`nodus dao vote 7 for --rpc-url URL --key-file K`), so they
belong to each command's own parameters; `shared_options(...)` adds the named ones to a command
and hands the command one `Options` object instead of loose arguments (the object is also put on
the click context, as hatch's commands find their `Application` there).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Final, Literal, TypeVar, cast

import click
import typer

from control_plane.paths import DEFAULT_DEPLOYMENTS_DIR

DEFAULT_RPC_URL: Final = "http://127.0.0.1:8545"
DEFAULT_API_URL: Final = "http://127.0.0.1:8000"

RpcUrlOption = Annotated[
    str,
    typer.Option("--rpc-url", envvar="NODUS_RPC_URL", help="JSON-RPC endpoint of the chain."),
]
DeploymentsDirOption = Annotated[
    Path,
    typer.Option(
        "--deployments-dir",
        envvar="NODUS_DEPLOYMENTS_DIR",
        help="Directory of <chain id>.json deployment files.",
    ),
]
KeyFileOption = Annotated[
    Path | None,
    typer.Option(
        "--key-file",
        envvar="NODUS_KEY_FILE",
        help=(
            "Your key: a file holding the hex private key (mode 0600) or an encrypted JSON "
            "keystore (password from NODUS_KEYSTORE_PASSWORD or a prompt). "
            "Without it: NODUS_PRIVATE_KEY, else the keystore of `nodus account new`."
        ),
    ),
]
ApiUrlOption = Annotated[
    str,
    typer.Option(
        "--api-url", "--api", envvar="NODUS_API_URL", help="Base URL of the Nodus control plane."
    ),
]
AdvanceTimeOption = Annotated[
    bool,
    typer.Option(
        "--advance-time",
        help="Local chain only (chain id 31337): move anvil's clock past the delay first.",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]

SharedName = Literal["rpc_url", "deployments_dir", "key_file", "api_url", "advance_time", "as_json"]


@dataclass(frozen=True, slots=True)
class Options:
    """The shared options of one invocation (defaults for those a command does not take)."""

    rpc_url: str = DEFAULT_RPC_URL
    deployments_dir: Path = DEFAULT_DEPLOYMENTS_DIR
    key_file: Path | None = None
    api_url: str = DEFAULT_API_URL
    advance_time: bool = False
    as_json: bool = False


def _parameter(name: str, annotation: object, default: object) -> inspect.Parameter:
    return inspect.Parameter(
        name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=default
    )


_SHARED: Final[dict[str, inspect.Parameter]] = {
    "rpc_url": _parameter("rpc_url", RpcUrlOption, DEFAULT_RPC_URL),
    "deployments_dir": _parameter("deployments_dir", DeploymentsDirOption, DEFAULT_DEPLOYMENTS_DIR),
    "key_file": _parameter("key_file", KeyFileOption, None),
    "api_url": _parameter("api_url", ApiUrlOption, DEFAULT_API_URL),
    "advance_time": _parameter("advance_time", AdvanceTimeOption, False),
    "as_json": _parameter("as_json", JsonOption, False),
}

R = TypeVar("R")


def shared_options(
    *names: SharedName, json_help: str | None = None
) -> Callable[[Callable[..., R]], Callable[..., R]]:
    """Adds the shared options `names` (in that order, after the command's own parameters) to a
    command whose keyword parameter `options: Options` receives them. `json_help` rewords
    `--json`'s help for a command whose output is not tables."""

    def decorate(command: Callable[..., R]) -> Callable[..., R]:
        signature = inspect.signature(command, eval_str=True)
        own = [p for p in signature.parameters.values() if p.name != "options"]
        shared = [_SHARED[name] for name in names]
        if json_help is not None and "as_json" in names:
            json_option = typer.Option("--json", help=json_help)
            shared = [
                p.replace(annotation=Annotated[bool, json_option]) if p.name == "as_json" else p
                for p in shared
            ]

        @functools.wraps(command)
        def wrapper(*args: object, **kwargs: object) -> R:
            options = Options(**cast(dict[str, Any], {name: kwargs.pop(name) for name in names}))
            context = click.get_current_context(silent=True)
            if context is not None:
                context.obj = options
            return command(*args, options=options, **kwargs)

        parameters = [*own, *shared]
        wrapper.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in parameters} | {"return": None}
        return wrapper

    return decorate
