"""The `nodus` exit codes, in one place (issue 11), and the errors that carry them.

    0  ok
    1  the chain or the API said no (a revert, a refusal, a failed verification)
    2  usage: bad input or configuration (a missing key, a wrong password, a bad value)
    3  payment needed: the wallet's subscription is not active (the message says the command)
    4  unreachable: the chain's RPC or the control plane's API cannot be reached
    5  tunnel failed: the tunnel did not come up or does not carry traffic

Every expected failure is a `CliError` with one of these codes, a cause (`message`) and, where
there is one, the next step for the user (`next_step`); `chain.run` prints both.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    REFUSED = 1
    USAGE = 2
    PAYMENT_NEEDED = 3
    UNREACHABLE = 4
    TUNNEL_FAILED = 5


class CliError(Exception):
    """A failure the user can act on: one message, one exit code, no traceback."""

    def __init__(
        self, message: str, exit_code: int = ExitCode.REFUSED, next_step: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = int(exit_code)
        self.next_step = next_step


class UsageError(CliError):
    """Bad input or configuration (exit code 2, like a usage error)."""

    def __init__(self, message: str, next_step: str | None = None) -> None:
        super().__init__(message, ExitCode.USAGE, next_step)


class PaymentNeeded(CliError):
    """The wallet has no active subscription (exit code 3); `next_step` is the exact
    `nodus subscribe ...` command to run."""

    def __init__(self, message: str, next_step: str) -> None:
        super().__init__(message, ExitCode.PAYMENT_NEEDED, next_step)


class Unreachable(CliError):
    """The chain or the control plane cannot be reached (exit code 4)."""

    def __init__(self, message: str, next_step: str | None = None) -> None:
        super().__init__(message, ExitCode.UNREACHABLE, next_step)


class TunnelFailed(CliError):
    """The tunnel did not come up or carries no traffic (exit code 5)."""

    def __init__(self, message: str, next_step: str | None = None) -> None:
        super().__init__(message, ExitCode.TUNNEL_FAILED, next_step)
