"""Sans-I/O SASL for both sides (RFC 4422 as profiled by RFC 6120 §6).

Mechanisms: SCRAM-SHA-1/256/512 and -PLUS (RFC 5802, RFC 7677, via ``scramp``), PLAIN (RFC 4616),
EXTERNAL (RFC 4422 App. A, XEP-0178), ANONYMOUS (RFC 4505). Payloads are raw bytes.
"""

from __future__ import annotations

from jaybird.sasl.anonymous import ClientAnonymous, ServerAnonymous
from jaybird.sasl.binding import tls_server_end_point
from jaybird.sasl.credentials import SCRAM_MECHANISMS, ScramCredentials, make_scram_credentials
from jaybird.sasl.external import ClientExternal, ServerExternal
from jaybird.sasl.mechanism import (
    Challenge,
    ChannelBinding,
    ClientMechanism,
    Credentials,
    NeedCredentials,
    ServerMechanism,
    ServerStep,
    Success,
)
from jaybird.sasl.negotiation import (
    client_mechanisms,
    select_client_mechanism,
    server_mechanism,
    server_mechanism_names,
)
from jaybird.sasl.plain import ClientPlain, ServerPlain
from jaybird.sasl.scram import SCRAM_NAMES, SUPPORTED_CHANNEL_BINDING_TYPES, ClientScram, ServerScram

__all__ = [
    "SCRAM_MECHANISMS",
    "SCRAM_NAMES",
    "SUPPORTED_CHANNEL_BINDING_TYPES",
    "Challenge",
    "ChannelBinding",
    "ClientAnonymous",
    "ClientExternal",
    "ClientMechanism",
    "ClientPlain",
    "ClientScram",
    "Credentials",
    "NeedCredentials",
    "ScramCredentials",
    "ServerAnonymous",
    "ServerExternal",
    "ServerMechanism",
    "ServerPlain",
    "ServerScram",
    "ServerStep",
    "Success",
    "client_mechanisms",
    "make_scram_credentials",
    "select_client_mechanism",
    "server_mechanism",
    "server_mechanism_names",
    "tls_server_end_point",
]
