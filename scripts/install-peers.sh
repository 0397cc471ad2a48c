#!/usr/bin/env bash
# Installs the third-party XMPP software the interop tests run against.
# Debian packages need root; without root the interop tests that need them are reported as skipped.
set -euo pipefail
need=()
command -v prosody >/dev/null 2>&1 || need+=(prosody)
command -v go-sendxmpp >/dev/null 2>&1 || need+=(go-sendxmpp)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
if [ ${#need[@]} -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "install-peers: not root; cannot install ${need[*]} (interop tests needing them will skip)" >&2
    exit 0
fi
echo "install-peers: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# The Debian package tries to start a system-wide instance; the tests run private ones.
if command -v service >/dev/null 2>&1; then service prosody stop >/dev/null 2>&1 || true; fi
