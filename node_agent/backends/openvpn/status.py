"""OpenVPN's status file (or `status 3` answer): live sessions, mapped to serials."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from node_agent.backends import PeerStats
from node_agent.backends.openvpn.clients import ClientEntry


@dataclass(frozen=True, slots=True)
class ConnectedClient:
    """One `CLIENT_LIST` row (with its `ROUTING_TABLE` last activity, if any)."""

    common_name: str
    real_address: str
    virtual_address: str | None
    virtual_ipv6: str | None
    bytes_received: int
    bytes_sent: int
    connected_since: int
    client_id: int | None
    last_ref: int | None = None


@dataclass(frozen=True, slots=True)
class StatusSnapshot:
    time: int | None
    clients: tuple[ConnectedClient, ...]
    complete: bool  # the END line was there (OpenVPN rewrites the file in place)


def _int(value: str | None) -> int | None:
    return int(value) if value is not None and value.strip().isdigit() else None


def parse_status(text: str) -> StatusSnapshot:
    """OpenVPN's status (`status-version` 2 or 3, from the file or the management socket's
    `status 3`). Columns are found by the `HEADER` lines, so their order may change."""
    delimiter = "\t" if "\t" in text.split("\n", 1)[0] else ","
    headers: dict[str, list[str]] = {}
    rows: list[dict[str, str]] = []
    last_refs: dict[str, int] = {}
    when: int | None = None
    complete = False
    for raw in text.splitlines():
        parts = raw.split(delimiter)
        kind = parts[0]
        if kind == "HEADER" and len(parts) > 2:
            headers[parts[1]] = parts[2:]
        elif kind == "TIME" and len(parts) >= 3:
            when = _int(parts[2])
        elif kind == "END":
            complete = True
        elif kind == "CLIENT_LIST" and "CLIENT_LIST" in headers:
            rows.append(dict(zip(headers["CLIENT_LIST"], parts[1:], strict=False)))
        elif kind == "ROUTING_TABLE" and "ROUTING_TABLE" in headers:
            route = dict(zip(headers["ROUTING_TABLE"], parts[1:], strict=False))
            ref = _int(route.get("Last Ref (time_t)"))
            address = route.get("Virtual Address", "")
            if ref is not None and address:
                last_refs[address] = max(ref, last_refs.get(address, 0))
    clients = []
    for row in rows:
        v4 = row.get("Virtual Address") or None
        v6 = row.get("Virtual IPv6 Address") or None
        refs = [last_refs[a] for a in (v4, v6) if a is not None and a in last_refs]
        clients.append(
            ConnectedClient(
                common_name=row.get("Common Name", ""),
                real_address=row.get("Real Address", ""),
                virtual_address=v4,
                virtual_ipv6=v6,
                bytes_received=_int(row.get("Bytes Received")) or 0,
                bytes_sent=_int(row.get("Bytes Sent")) or 0,
                connected_since=_int(row.get("Connected Since (time_t)")) or 0,
                client_id=_int(row.get("Client ID")),
                last_ref=max(refs) if refs else None,
            )
        )
    return StatusSnapshot(time=when, clients=tuple(clients), complete=complete)


def serial_of(client: ConnectedClient, by_address: Mapping[str, str]) -> str | None:
    """The serial whose entry pushed this session's address (None: not one of ours)."""
    for address in (client.virtual_address, client.virtual_ipv6):
        if address is not None and address in by_address:
            return by_address[address]
    return None


def address_index(entries: Mapping[str, ClientEntry]) -> dict[str, str]:
    return {address: s for s, e in entries.items() for address in e.addresses}


def stats_from(snapshot: StatusSnapshot, entries: Mapping[str, ClientEntry]) -> list[PeerStats]:
    """Per serial: the byte counters the server saw (received = from the client) and the latest
    sign of life (connected since, or the last packet routed to/from it)."""
    by_address = address_index(entries)
    merged: dict[str, PeerStats] = {}
    for client in snapshot.clients:
        serial = serial_of(client, by_address)
        if serial is None:
            continue
        seen = max(client.connected_since, client.last_ref or 0) or None
        previous = merged.get(serial)
        if previous is not None:  # two sessions of one certificate: add them up
            last = max(previous.last_handshake_at or 0, seen or 0) or None
            merged[serial] = PeerStats(
                serial,
                last,
                previous.rx_bytes + client.bytes_received,
                previous.tx_bytes + client.bytes_sent,
            )
        else:
            merged[serial] = PeerStats(
                serial, float(seen) if seen else None, client.bytes_received, client.bytes_sent
            )
    return sorted(merged.values(), key=lambda s: s.key)
