"""An epoch at scale, seeded in-server (INSERT ... SELECT generate_series) into a migrated
database: one node per operator, three probers' twelve rounds of every node, one paying
subscriber's WireGuard config per node and its agent's reports (a baseline and two in the
epoch). The samples carry a placeholder signature: signing millions would dominate the seeding.
Used by P5 (bench/epoch_db.py) and by the tests of the epoch's reads at scale."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg

CHAIN_ID = 31337
PROBERS = 3
ROUNDS = 12  # one every five minutes of a one-hour epoch
START = datetime(2026, 1, 1, tzinfo=UTC)
END = START + timedelta(hours=1)

# $1: nodes, $2: the epoch's start. Addresses and ids are the node's number in hex.
SEED = [
    """INSERT INTO nodes (id, operator, protocols, endpoint, country, ipv4_pool, ipv6_pool,
           revision, created_at)
       SELECT '0x' || lpad(to_hex(i), 64, '0'), '0x' || lpad(to_hex(i), 40, '0'),
              ARRAY['wireguard'], '198.51.100.1:51820', 'DE', '10.0.0.0/16', 'fd00::/64', 0,
              $2::timestamptz - interval '1 day'
       FROM generate_series(1, $1::int) AS i""",
    """INSERT INTO chain_nodes (node_id, operator, agent, stake, status, active, updated_block)
       SELECT '0x' || lpad(to_hex(i), 64, '0'), '0x' || lpad(to_hex(i), 40, '0'),
              '0x' || lpad(to_hex(i + 7000000), 40, '0'), 100e18, 'Active', true, 1
       FROM generate_series(1, $1::int) AS i""",
    """INSERT INTO probers (address, name)
       SELECT '0x' || lpad(to_hex(p + 160), 40, '0'), 'prober ' || p
       FROM generate_series(1, $1::int) AS p""",
    # PROBERS x ROUNDS samples per node.
    """INSERT INTO probe_samples (prober, node_id, round_at, attempts, rtt_us, error, signature)
       SELECT '0x' || lpad(to_hex(p + 160), 40, '0'), '0x' || lpad(to_hex(i), 64, '0'),
              $2::timestamptz + r * interval '5 minutes', 3,
              CASE WHEN (i + p + r) % 17 = 0 THEN ARRAY[]::int[]
                   ELSE ARRAY[20000 + (i * 37) % 50000] END,
              CASE WHEN (i + p + r) % 17 = 0 THEN 'timeout' END, '0x' || repeat('00', 65)
       FROM generate_series(1, $1::int) AS i, generate_series(1, 3) AS p,
            generate_series(0, 11) AS r""",
    """INSERT INTO subscribers (address, expires_at)
       SELECT '0x' || lpad(to_hex(i + 20000000), 40, '0'), $2::timestamptz + interval '30 days'
       FROM generate_series(1, $1::int) AS i""",
    """INSERT INTO device_configs (id, node_id, subscriber, protocol, public_key, ipv4, ipv6,
           created_at)
       SELECT gen_random_uuid(), '0x' || lpad(to_hex(i), 64, '0'),
              '0x' || lpad(to_hex(i + 20000000), 40, '0'), 'wireguard',
              rpad('k' || i, 43, 'A') || '=', '10.0.0.2', 'fd00::2',
              $2::timestamptz - interval '1 day'
       FROM generate_series(1, $1::int) AS i""",
    """INSERT INTO peer_metrics (node_id, public_key, reported_at, last_handshake_at, rx_bytes,
           tx_bytes)
       SELECT '0x' || lpad(to_hex(i), 64, '0'), rpad('k' || i, 43, 'A') || '=',
              $2::timestamptz + m * interval '1 second',
              $2::timestamptz + (m - 30) * interval '1 second',
              (m + 600) * (i % 97 + 1) * 1000, (m + 600) * (i % 89) * 1000
       FROM generate_series(1, $1::int) AS i, unnest(ARRAY[-600, 1200, 3000]) AS m""",
]


async def seed_epoch(connection: asyncpg.Connection, nodes: int) -> None:
    """`nodes` operators' epoch `[START, END)`, then ANALYZE (as autovacuum would)."""
    for statement in SEED:
        count = PROBERS if "INTO probers" in statement else nodes
        await connection.execute(statement, count, *([START] if "$2" in statement else []))
    await connection.execute("ANALYZE")
