"""Channel-binding data (RFC 5929, RFC 9266) as pure functions of bytes.

What Python's :mod:`ssl` module can provide the driver (checked on CPython 3.11, 3.12 and 3.13 with
OpenSSL 3.0; none of them has a keying-material exporter on ``SSLObject`` or ``SSLSocket``):

* ``tls-server-end-point`` (RFC 5929 §4): works on every TLS version. The client hashes
  ``getpeercert(binary_form=True)``; the server hashes its own certificate (the DER of the certificate it
  loaded, which ``ssl`` does not hand back, so the driver reads it from the configured file). See
  :func:`tls_server_end_point`.
* ``tls-unique`` (RFC 5929 §3): ``get_channel_binding("tls-unique")``. Only valid for TLS 1.2 and older:
  RFC 9266 §3 forbids it for TLS 1.3, yet CPython returns a value on 1.3 too (python/cpython#95341), so the
  driver must check ``version()`` itself before using it.
* ``tls-exporter`` (RFC 9266): needs RFC 5705 keying-material export, which the stdlib does not expose
  (python/cpython#82133 is still open); only third-party bindings such as pyOpenSSL's
  ``Connection.export_keying_material`` can compute it. scramp 1.5 also refuses the type, so jaybird offers
  no -PLUS on TLS 1.3 unless ``tls-server-end-point`` is used.
"""

from __future__ import annotations

import functools

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes

__all__ = ["tls_server_end_point"]


@functools.lru_cache(maxsize=64)
def tls_server_end_point(certificate_der: bytes) -> bytes:
    """The hash of the server certificate (RFC 5929 §4.1): with the hash of the certificate's signature
    algorithm, SHA-256 when that is MD5 or SHA-1.

    Raises ``ValueError`` for bytes that are not a DER certificate, and for signatures with no single hash
    (Ed25519, Ed448), for which RFC 5929 §4.1 leaves the binding undefined. Cached: a server computes it for
    its own few certificates on every TLS connection.
    """
    cert = x509.load_der_x509_certificate(certificate_der)
    try:
        algorithm = cert.signature_hash_algorithm
    except UnsupportedAlgorithm as e:
        raise ValueError(f"unknown certificate signature algorithm: {e}") from e
    if algorithm is None:
        raise ValueError("the certificate's signature uses no single hash; tls-server-end-point is undefined")
    if isinstance(algorithm, hashes.MD5 | hashes.SHA1):
        algorithm = hashes.SHA256()
    digest = hashes.Hash(algorithm)
    digest.update(certificate_der)
    return digest.finalize()
