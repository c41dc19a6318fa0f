# Shared by scripts/dev, scripts/test and scripts/deploy: paths, tool selection, install steps.
# Source it; it defines functions and exports the environment the tools need. Idempotent.
# shellcheck shell=bash

NODUS_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export NODUS_ROOT
export PATH="$NODUS_ROOT/node_modules/.bin:$PATH"
# forge must never try to download a compiler: there is no internet here, only registries.
export FOUNDRY_OFFLINE=true

log() { printf '\033[1;34m[nodus]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31m[nodus]\033[0m %s\n' "$*" >&2; exit 1; }

# Use a native solc 0.8 when one is installed (a normal Foundry user), else solcjs via scripts/solc.
select_solc() {
  if [[ -n "${FOUNDRY_SOLC:-}" ]]; then return; fi
  if command -v solc >/dev/null 2>&1 && solc --version 2>/dev/null | grep -q 'Version: 0\.8\.'; then
    return
  fi
  export FOUNDRY_SOLC="$NODUS_ROOT/scripts/solc"
}

# npm packages (Foundry binaries, solcjs, OpenZeppelin, forge-std): only when the lock changed.
ensure_npm() {
  command -v npm >/dev/null 2>&1 || die "npm is required (Node.js 18+); install it with your package manager"
  local stamp="$NODUS_ROOT/node_modules/.nodus-lock"
  if [[ -f "$stamp" ]] && cmp -s "$stamp" "$NODUS_ROOT/package-lock.json"; then return; fi
  # Not `npm ci`: the lock lists Foundry's binaries for other platforms as optional packages, some
  # of which this registry lacks, and `npm ci` then refuses the lock. `npm install` honours the
  # same locked versions; --no-save keeps it from writing the lock back (it adds other platforms'
  # optional entries otherwise), so a run leaves no tracked file modified.
  log "installing npm packages (npm install from package-lock.json)"
  (cd "$NODUS_ROOT" && npm install --no-save --no-audit --no-fund --loglevel=error) || die "npm install failed"
  cp "$NODUS_ROOT/package-lock.json" "$stamp"
}

# Python virtualenv with the project and its dev extras: only when pyproject.toml changed.
ensure_venv() {
  local venv="$NODUS_ROOT/.venv" stamp="$NODUS_ROOT/.venv/.nodus-pyproject"
  if [[ ! -x "$venv/bin/python" ]]; then
    log "creating .venv"
    python3 -m venv "$venv" || die "python3 -m venv failed (Python 3.11+ with venv is required)"
  fi
  if [[ -f "$stamp" ]] && cmp -s "$stamp" "$NODUS_ROOT/pyproject.toml"; then return; fi
  log "installing Python packages into .venv (log: .venv/pip.log)"
  if ! { "$venv/bin/python" -m pip install --upgrade pip &&
    "$venv/bin/python" -m pip install -e "$NODUS_ROOT[dev]"; } >"$venv/pip.log" 2>&1; then
    tail -n 30 "$venv/pip.log" >&2
    die "pip install failed (full log: .venv/pip.log)"
  fi
  cp "$NODUS_ROOT/pyproject.toml" "$stamp"
}

# Debian packages for the tunnels of later tests (WireGuard userspace, OpenVPN, nftables for the
# agent's NAT and the kill switch) and wrk (the HTTP load of scripts/bench); root only.
DEBIAN_PACKAGES=(wireguard-tools wireguard-go openvpn iproute2 iputils-ping nftables wrk prometheus victoria-metrics)
ensure_debian() {
  local missing=() pkg
  for pkg in "${DEBIAN_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  ((${#missing[@]} == 0)) && return
  if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
    log "missing Debian packages (${missing[*]}); tunnel tests need them and root"
    return
  fi
  log "installing Debian packages: ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null ||
    die "apt-get install ${missing[*]} failed"
}

select_solc
