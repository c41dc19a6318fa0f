"""`nodus rewards`: an operator's reward commands.

- `show`: what the control plane says the address has earned, claimed and can claim;
- `claim`: fetches the Merkle proof from the control plane, checks it against the chain's current
  root, sends `RewardDistributor.claim` with the user's key and shows what arrived;
- `history`: the address's Claimed events and every epoch's fate, read from the chain;
- `verify <epoch>`: recomputes an epoch's root from its published data and compares it with the
  chain's;
- `watch`: recomputes each proposed root and revokes (as guardian) or alerts on a wrong one.
"""

from __future__ import annotations

import typer

from nodus_cli.rewards.claim import claim, show
from nodus_cli.rewards.history import history
from nodus_cli.rewards.verify import verify
from nodus_cli.rewards.watch import watch

rewards_app = typer.Typer(
    name="rewards",
    help="Operator rewards: show, claim, history, verify an epoch against the chain, and watch "
    "proposed roots.",
    no_args_is_help=True,
)
rewards_app.command()(show)
rewards_app.command()(claim)
rewards_app.command()(history)
rewards_app.command()(verify)
rewards_app.command()(watch)
