"""`GET /v1/agent/openvpn`: what a node's OpenVPN server needs, for that node's own agent.

The CA and server certificate, the server's private key, the tls-crypt key, a freshly signed CRL
(every revoked certificate of the node that has not expired) with its validity, the UDP port and
the node's address pools. The agent fetches it at start, whenever its desired set loses a peer
(the CRL then lists the revoked serial) and well before the CRL's `crl_next_update`: OpenVPN
refuses every client once its CRL has expired.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from cryptography import x509
from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from control_plane.auth.dependencies import NodePrincipal
from control_plane.auth.principal import Principal
from control_plane.db import Session
from control_plane.dependencies import SettingsDep
from control_plane.errors import Forbidden, error_response
from control_plane.nodes.service import openvpn_material
from control_plane.patterns import IPV4_CIDR, IPV6_CIDR, NODE_ID, TUNNEL_ADDRESS

router = APIRouter(prefix="/agent", tags=["agent"])

_PEM_EXAMPLE = "-----BEGIN CERTIFICATE-----\nMIIB...\n-----END CERTIFICATE-----\n"


class OpenVpnMaterialOut(BaseModel):
    """The node's OpenVPN material. Keys are secrets: keep them 0600 on the node."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "node_id": "0x6e6f6465000000000000000000000000000000000000000000000000000000a1",
                    "port": 1194,
                    "ca_cert": _PEM_EXAMPLE,
                    "server_cert": _PEM_EXAMPLE,
                    "server_key": "-----BEGIN PRIVATE KEY-----\n...\n-----END PRIVATE KEY-----\n",
                    "tls_crypt_key": "-----BEGIN OpenVPN Static key V1-----\n...\n"
                    "-----END OpenVPN Static key V1-----\n",
                    "crl": "-----BEGIN X509 CRL-----\n...\n-----END X509 CRL-----\n",
                    "crl_last_update": "2030-01-01T11:55:00Z",
                    "crl_next_update": "2030-01-08T12:00:00Z",
                    "ipv4_pool": "10.110.0.0/16",
                    "ipv6_pool": "fd12:3456:789a::/112",
                    "server_addresses": ["10.110.0.1/16", "fd12:3456:789a::1/112"],
                }
            ]
        }
    )

    node_id: str = Field(pattern=NODE_ID)
    port: int = Field(
        ge=1, le=65535, description="The UDP port clients' profiles name (listen on it)."
    )
    ca_cert: str = Field(description="The node's own CA (PEM): it signed everything below.")
    server_cert: str = Field(description="The server certificate (PEM, serverAuth).")
    server_key: str = Field(description="The server's private key (PEM, PKCS#8). Secret.")
    tls_crypt_key: str = Field(description="The OpenVPN static key for `tls-crypt`. Secret.")
    crl: str = Field(description="The node's current CRL (PEM), signed by its CA.")
    crl_last_update: datetime = Field(description="The CRL's thisUpdate (UTC).")
    crl_next_update: datetime = Field(
        description="The CRL's nextUpdate (UTC): OpenVPN refuses every client after it. "
        "Fetch a fresh one well before."
    )
    ipv4_pool: str = Field(
        pattern=IPV4_CIDR, description="The node's IPv4 pool; `server` takes it."
    )
    ipv6_pool: str = Field(
        pattern=IPV6_CIDR, description="The node's IPv6 pool; `server-ipv6` takes it."
    )
    server_addresses: list[Annotated[str, Field(pattern=TUNNEL_ADDRESS)]] = Field(
        description="The node's own tunnel addresses (host 1 of each pool), with prefix."
    )


def _own_node(principal: Principal, node_id: str | None) -> str:
    if principal.node_id is None:
        raise Forbidden("this token is not scoped to a node")
    own = principal.node_id.lower()
    if node_id is not None and node_id.lower() != own:
        raise Forbidden("a node token reads only its own node")
    return own


@router.get(
    "/openvpn",
    responses={
        401: error_response("missing or invalid token"),
        403: error_response("not a node token, or another node's"),
        404: error_response(
            "the token's node does not exist, is deleted, or does not serve OpenVPN"
        ),
        422: error_response("invalid input"),
    },
)
async def get_openvpn_material(
    response: Response,
    principal: NodePrincipal,
    session: Session,
    settings: SettingsDep,
    node_id: Annotated[
        str | None,
        Query(
            max_length=66, pattern=NODE_ID, description="Optional; must be the token's own node."
        ),
    ] = None,
) -> OpenVpnMaterialOut:
    """The OpenVPN material of the token's own node, with a CRL signed just now. Never cached
    (it holds private keys)."""
    material = await openvpn_material(session, settings, _own_node(principal, node_id))
    crl = x509.load_pem_x509_crl(material.crl.encode())
    next_update = crl.next_update_utc
    assert next_update is not None  # build_crl always sets it
    response.headers["Cache-Control"] = "no-store"
    return OpenVpnMaterialOut(
        node_id=material.node_id,
        port=material.port,
        ca_cert=material.ca_cert,
        server_cert=material.server_cert,
        server_key=material.server_key,
        tls_crypt_key=material.tls_crypt_key,
        crl=material.crl,
        crl_last_update=crl.last_update_utc,
        crl_next_update=next_update,
        ipv4_pool=material.ipv4_pool,
        ipv6_pool=material.ipv6_pool,
        server_addresses=list(material.server_addresses),
    )
