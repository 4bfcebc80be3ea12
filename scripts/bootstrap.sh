#!/usr/bin/env bash
# Set up everything sdn-egw needs on a Debian 12 machine, as root.
# Idempotent: a second run checks a stamp and returns in about a second.
#
#   scripts/bootstrap.sh            # Debian packages + .venv with the train, emulate and test extras
#   EGW_VENV=/path scripts/bootstrap.sh
#   EGW_EXTRAS=train,emulate,test,cluster scripts/bootstrap.sh   # also Ray (what ./egw.sh test uses)
#
# What it does:
#   1. Debian packages: Open vSwitch, mnexec (package mininet), iperf3, iproute2, ethtool,
#      tcpdump, ping, python3-venv, prometheus (its binaries only: the tests start their own on
#      loopback; the system service is never used) (only those missing; apt-get update only
#      when needed).
#   2. A virtual environment in the project (.venv, git-ignored) with pinned versions
#      (constraints.txt).
#   3. Ryu 4.34 built from its sdist with patches/ryu-4.34-*.patch: eventlet-already-handled
#      (ryu.app.wsgi imports eventlet.wsgi.ALREADY_HANDLED, removed in eventlet 0.33.3) and
#      wsgi-socket-timeout (hub.WSGI_SOCKET_TIMEOUT, passed to eventlet.wsgi.server, so the
#      app can close silent REST clients), with setuptools<68, wheel and pbr in the venv and
#      --no-build-isolation.
#   4. This project, editable, with the extras in EGW_EXTRAS (default train,emulate,test;
#      `cluster` adds Ray for the --ray paths, about 250 MB).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${EGW_VENV:-$ROOT/.venv}"
CACHE="$ROOT/.bootstrap"
RYU_VERSION=4.34
PATCHES=("$ROOT"/patches/ryu-4.34-*.patch)
EXTRAS="${EGW_EXTRAS:-train,emulate,test}"
APT_PACKAGES=(openvswitch-switch mininet iperf3 iproute2 ethtool tcpdump iputils-ping
              python3-venv python3-dev patch prometheus)

say() { printf '[bootstrap] %s\n' "$*"; }

# ---- 1. Debian packages ------------------------------------------------------
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
    if [ "$(id -u)" != 0 ]; then
        say "missing Debian packages: ${missing[*]} (run as root to install them)"; exit 1
    fi
    say "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # The package's service scripts may try to start the system OVS; we never use it
    # (topologies/ovs_service.py runs a private instance), so ignore their failure.
    # Nor the system Prometheus (the tests run /usr/bin/prometheus themselves on loopback):
    # while installing, a policy-rc.d (if there is none) tells the packages not to start
    # their services.
    guard=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        guard=/usr/sbin/policy-rc.d
        printf '#!/bin/sh\nexit 101\n' > "$guard" && chmod 755 "$guard"
    fi
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || rc=$?
    [ -n "$guard" ] && rm -f "$guard"
    [ "${rc:-0}" = 0 ] || { say "apt-get install failed ($rc)"; exit "$rc"; }
fi

# ---- 2-4. Python environment ------------------------------------------------------------
stamp_inputs() {
    cat "$ROOT/constraints.txt" "$ROOT/setup.cfg" "$ROOT/pyproject.toml" "${PATCHES[@]}" \
        "$ROOT/scripts/bootstrap.sh" <(echo "$EXTRAS") | sha256sum | cut -d' ' -f1
}
STAMP="$VENV/.egw-bootstrap"
want="$(stamp_inputs)"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && [ -x "$VENV/bin/egw" ] \
        && [ -x "$VENV/bin/ryu-manager" ]; then
    say "environment up to date ($VENV)"
    exit 0
fi

PY="${EGW_PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
    say "creating virtual environment $VENV"
    "$PY" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)
"${PIP[@]}" install -c "$ROOT/constraints.txt" 'setuptools<68' wheel pbr

if ! "$VENV/bin/python" - <<'EOF' 2>/dev/null
import importlib.metadata as m, pathlib, sys
import ryu
root = pathlib.Path(ryu.__file__).parent
ok = (m.version("ryu") == "4.34"
      and "ALREADY_HANDLED = []" in (root / "app" / "wsgi.py").read_text()
      and "WSGI_SOCKET_TIMEOUT" in (root / "lib" / "hub.py").read_text())
sys.exit(0 if ok else 1)
EOF
then
    say "building Ryu $RYU_VERSION from its sdist with patches/ryu-$RYU_VERSION-*.patch"
    mkdir -p "$CACHE"
    if [ ! -f "$CACHE/ryu-$RYU_VERSION.tar.gz" ]; then
        "${PIP[@]}" download --no-deps --no-binary :all: --no-build-isolation \
            -d "$CACHE" "ryu==$RYU_VERSION"
    fi
    rm -rf "$CACHE/ryu-$RYU_VERSION"
    tar -xzf "$CACHE/ryu-$RYU_VERSION.tar.gz" -C "$CACHE"
    for p in "${PATCHES[@]}"; do
        patch -s -p1 -d "$CACHE/ryu-$RYU_VERSION" < "$p"
    done
    "${PIP[@]}" install -c "$ROOT/constraints.txt" --no-build-isolation "$CACHE/ryu-$RYU_VERSION"
fi

say "installing sdn-egw and its dependencies, extras $EXTRAS (pinned by constraints.txt)"
"${PIP[@]}" install -c "$ROOT/constraints.txt" --no-build-isolation -e "$ROOT[$EXTRAS]"

"$VENV/bin/ryu-manager" --version >/dev/null 2>&1 || { say "ryu-manager does not start"; exit 1; }
echo "$want" > "$STAMP"
say "ready: $VENV"
