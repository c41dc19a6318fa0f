"""Every table, imported in one place for Alembic and the test fixtures."""

from control_plane.agent.models import Heartbeat, PeerMetric
from control_plane.auth.models import AgentChallenge, ApiKey, AuthNonce
from control_plane.chain.outbox import OutboxTx, TxAttempt, TxSenderKey
from control_plane.db import Base
from control_plane.device_configs import DeviceConfig
from control_plane.indexer.models import (
    ChainCursor,
    ChainIdentity,
    ChainNode,
    IndexedBlock,
    RewardEpoch,
)
from control_plane.jobs import JobRun
from control_plane.nodes.models import Node
from control_plane.prober.models import Prober, ProbeSample
from control_plane.revisions import PeerChange, RevisionBump
from control_plane.rewards.posting.models import RewardLeaf, RewardPublication
from control_plane.rewards.score_models import NodeScoreRecord, OperatorAllocation, ScoredEpoch
from control_plane.subscriptions.models import Payment, Subscriber

__all__ = [
    "AgentChallenge",
    "ApiKey",
    "AuthNonce",
    "Base",
    "ChainCursor",
    "ChainIdentity",
    "ChainNode",
    "DeviceConfig",
    "Heartbeat",
    "IndexedBlock",
    "JobRun",
    "Node",
    "NodeScoreRecord",
    "OperatorAllocation",
    "OutboxTx",
    "Payment",
    "PeerChange",
    "PeerMetric",
    "ProbeSample",
    "Prober",
    "RevisionBump",
    "RewardEpoch",
    "RewardLeaf",
    "RewardPublication",
    "ScoredEpoch",
    "Subscriber",
    "TxAttempt",
    "TxSenderKey",
]
