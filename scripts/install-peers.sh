#!/usr/bin/env bash
# Installs the third-party XMPP software the interop tests start themselves (Debian 12 packages), and makes
# sure no system-wide Prosody, ejabberd or biboumi is running: the tests run private instances on their own
# loopback ports.
# Idempotent and silent when there is nothing to do. Without root, missing packages are reported and the
# interop tests skip (or fail, when CI is set).
set -euo pipefail

# lua-unbound is only a Recommends of prosody: without it Prosody falls back to its legacy DNS resolver.
# biboumi is the IRC gateway component (XEP-0114) the component interop test connects to jaybird.
# chromium, nodejs and npm run the web client tests (tests/web/: Strophe.js, @xmpp/client, Converse.js).
packages=(prosody lua-unbound ejabberd go-sendxmpp openssl postgresql biboumi chromium nodejs)

missing=()
for pkg in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}\n' "$pkg" 2>/dev/null | grep -qx 'install ok installed'; then
        missing+=("$pkg")
    fi
done

# npm comes with nodejs from NodeSource, and Debian's npm package conflicts with that nodejs: ask only if absent.
if ! command -v npm >/dev/null 2>&1; then
    missing+=(npm)
fi

if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "install-peers: not root, cannot install: ${missing[*]}" >&2
        if [ -n "${CI:-}" ] && [ "${CI}" != "false" ] && [ "${CI}" != "0" ]; then
            exit 1
        fi
        exit 0
    fi
    log=$(mktemp)
    policy_created=0
    # Keep the packages' maintainer scripts from starting a system-wide Prosody, ejabberd or biboumi at all.
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        policy_created=1
    fi
    cleanup() {
        if [ "$policy_created" -eq 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
        rm -f "$log"
    }
    trap cleanup EXIT
    export DEBIAN_FRONTEND=noninteractive
    if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$log" 2>&1
    then
        cat "$log" >&2
        echo "install-peers: apt-get failed installing: ${missing[*]}" >&2
        exit 1
    fi
    echo "install-peers: installed ${missing[*]}"
fi

# A system instance started anyway (by an older install, or an init system ignoring policy-rc.d) is stopped.
for service in prosody ejabberd biboumi; do
    if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$service" 2>/dev/null; then
        systemctl stop "$service"
    fi
done
pidfile=/run/prosody/prosody.pid
if [ -r "$pidfile" ]; then
    pid=$(cat "$pidfile")
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid"
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
    fi
fi

# The web clients the tests drive (package.json / package-lock.json at the repository root), installed once.
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if command -v npm >/dev/null 2>&1 && [ -f "$repo/package-lock.json" ]; then
    if [ ! -f "$repo/node_modules/.package-lock.json" ] || [ "$repo/package-lock.json" -nt "$repo/node_modules/.package-lock.json" ]; then
        if ! (cd "$repo" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error >/dev/null); then
            echo "install-peers: npm ci failed in $repo" >&2
            exit 1
        fi
        echo "install-peers: installed the npm packages of tests/web"
    fi
fi
