#!/usr/bin/env bash
# Installs what a fresh Debian 12 machine lacks for kha (as root): Debian packages, the Temporal CLI (built once
# with `go install`), and the npm dependencies; then builds. Safe to run again: it only adds what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

export DEBIAN_FRONTEND=noninteractive
export PATH="$PATH:/usr/local/go/bin:$HOME/go/bin"

# sshd/ssh and sudo for lab hosts, iproute2 for namespaces, shellcheck for the rendered scripts, chromium for the
# Web UI test, procps/psmisc/util-linux for process handling in the lab and the CLI tests, a C compiler for the
# lab's sim client (dist/bin/kha-sim-client), zsh for the test of `kha completion zsh`. The lab's real tier runs
# Debian's containerd, runc, CNI plugins and the tools kube-proxy and kubeadm call (ipset, ipvsadm, conntrack,
# socat, iptables, nftables) inside its hosts.
pkgs=(openssh-server openssh-client sudo iproute2 shellcheck chromium procps psmisc util-linux gcc libc6-dev zsh
  containerd runc containernetworking-plugins ipset ipvsadm conntrack socat iptables nftables gnupg openssl curl)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "setup: missing Debian packages: ${missing[*]}; run as root (sudo bash $0)" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The machine's own sshd is not needed; lab hosts start their own.
systemctl disable --now ssh.service >/dev/null 2>&1 || true

# The Temporal CLI (dev server + Web UI): reuse a built one, else `go install` it once.
TEMPORAL_CLI_PATH="$(bash scripts/temporal-cli.sh)"
echo "setup: temporal CLI at $TEMPORAL_CLI_PATH"

# Real Kubernetes for the lab's real tier (the tests need it; the demo does not), built once per machine from the
# Go module proxy: about 40 minutes cold, seconds once built.
if [ "${KHA_REAL_TIER:-}" = 1 ]; then
  KHA_KUBE_CACHE="$(bash scripts/kube-build.sh)"
  echo "setup: real Kubernetes binaries in $KHA_KUBE_CACHE"
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
npm run build --silent

# The packaging test installs the packed kha with `npm install -g --offline`: unless the npm cache can already
# resolve it, one install here, online, puts its dependencies' registry metadata and tarballs in the cache.
tmp="$(mktemp -d)"
mkdir -p "$tmp/prefix/lib"
npm pack --ignore-scripts --silent --pack-destination "$tmp" >/dev/null
if ! npm install -g --prefix "$tmp/prefix" "$tmp"/kha-*.tgz --offline --dry-run --no-audit --no-fund >/dev/null 2>&1; then
  echo "setup: filling the npm cache for the offline install test"
  npm install -g --prefix "$tmp/prefix" "$tmp"/kha-*.tgz --prefer-offline --no-audit --no-fund --loglevel=error >/dev/null
fi
rm -rf "$tmp"
