#!/usr/bin/env bash
# Builds the real Kubernetes and etcd binaries the lab's real tier runs, from the Go module proxy, into a
# versioned cache reused across runs (like the Temporal CLI). Prints the cache directory on stdout.
#   scripts/kube-build.sh                 # the pinned versions below
#   scripts/kube-build.sh 1.35.4 1.34.4   # these Kubernetes patches (etcd stays pinned)
# Layout: $KHA_KUBE_CACHE/kubernetes/v1.35.4/{kubeadm,kubelet,kubectl,kube-apiserver,...}
#         $KHA_KUBE_CACHE/etcd/v3.6.x/{etcd,etcdctl,etcdutl}
#         $KHA_KUBE_CACHE/crictl/v1.34.0/crictl, $KHA_KUBE_CACHE/coredns/v1.13.1/coredns
#         $KHA_KUBE_CACHE/standins/<hash of src/lab/real/standins>/{kube-vip,calico-node,pause}
# A directory counts as built only once its .complete marker exists, so an interrupted build starts again.
set -euo pipefail
cd "$(dirname "$0")/.."

# The examples' minor and the one before it, so upgrades can be tested.
default_kube=(1.35.4 1.34.4)
etcd_version=3.6.16
crictl_version=1.34.0
# kubeadm 1.34 and 1.35 both pull this CoreDNS.
coredns_version=1.13.1
cache="${KHA_KUBE_CACHE:-/var/cache/kha/kube}"
tools=(kubeadm kubelet kubectl kube-apiserver kube-controller-manager kube-scheduler kube-proxy)

export PATH="$PATH:/usr/local/go/bin"
command -v go >/dev/null || { echo "kube-build: no go on PATH (or /usr/local/go/bin)" >&2; exit 3; }
export CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN=local
mkdir -p "$cache"
# One build at a time per cache: a second caller (another test run, the demo) waits, then finds it complete.
exec 9>"$cache/.lock"
flock 9
versions=("$@")
[ "${#versions[@]}" -gt 0 ] || versions=("${default_kube[@]}")

log() { echo "kube-build: $*" >&2; }

build_kube() {
  local v="$1" out="$cache/kubernetes/v$1" work="$cache/src/kubernetes-v$1" t missing=()
  for t in "${tools[@]}"; do [ -x "$out/$t" ] || missing+=("$t"); done
  [ -f "$out/.complete" ] && [ "${#missing[@]}" = 0 ] && return 0
  local minor="${v#*.}"; minor="${minor%%.*}"
  log "building Kubernetes v$v (${missing[*]}); about 17 minutes on 2 cores for all of them, once"
  rm -f "$out/.complete"
  if [ ! -f "$work/go.sum" ]; then
    rm -rf "$work"; mkdir -p "$work" "$out"
    local gomod
    gomod=$(cd "$work" && go mod download -json "k8s.io/kubernetes@v$v" | sed -n 's/^\s*"GoMod": "\(.*\)",*$/\1/p')
    [ -f "$gomod" ] || { log "no go.mod for k8s.io/kubernetes@v$v"; return 1; }
    {
      echo "module kha.local/kube-v$v"
      echo "go 1.24"
      echo "require k8s.io/kubernetes v$v"
      # kubernetes replaces its staging modules with local paths; point each at its published v0.Y.Z.
      grep -oE '^\s*k8s\.io/[a-z0-9-]+ => \./staging/src/k8s\.io/[a-z0-9-]+' "$gomod" | awk '{print $1}' | sort -u |
        while read -r m; do echo "replace $m => $m v0.$minor.${v##*.}"; done
    } >"$work/go.mod"
  fi
  mkdir -p "$out"
  local pkgs=()
  for t in "${missing[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$t"); done
  (cd "$work" && go get "${pkgs[@]/%/@v$v}" >&2)
  local ldflags="-s -w -X k8s.io/component-base/version.gitVersion=v$v -X k8s.io/component-base/version.gitMajor=1"
  ldflags+=" -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean"
  ldflags+=" -X k8s.io/client-go/pkg/version.gitVersion=v$v -X k8s.io/client-go/pkg/version.gitMajor=1"
  ldflags+=" -X k8s.io/client-go/pkg/version.gitMinor=$minor"
  (cd "$work" && go build -trimpath -ldflags "$ldflags" -o "$out/" "${pkgs[@]}" >&2)
  "$out/kubeadm" version -o short | grep -qx "v$v" || { log "kubeadm reports $("$out/kubeadm" version -o short)"; return 1; }
  touch "$out/.complete"
}

build_etcd() {
  local v="$etcd_version" out="$cache/etcd/v$etcd_version" work="$cache/src/etcd-v$etcd_version"
  [ -f "$out/.complete" ] && return 0
  log "building etcd v$v (etcd, etcdctl, etcdutl)"
  rm -rf "$work" "$out"; mkdir -p "$work/etcd" "$out"
  cat >"$work/go.mod" <<EOF
module kha.local/etcd-v$v
go 1.24
EOF
  # etcd's own main lives in a module with local replaces; a three-line main of ours calls the same entry.
  cat >"$work/etcd/main.go" <<'EOF'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
EOF
  (cd "$work" && go get "go.etcd.io/etcd/server/v3@v$v" "go.etcd.io/etcd/etcdctl/v3@v$v" "go.etcd.io/etcd/etcdutl/v3@v$v" >&2)
  local ldflags="-s -w"
  (cd "$work" && go build -trimpath -ldflags "$ldflags" -o "$out/" ./etcd go.etcd.io/etcd/etcdctl/v3 go.etcd.io/etcd/etcdutl/v3 >&2)
  # go names a module-root main after the module's last element: v3.
  [ -x "$out/etcdctl" ] || { log "etcdctl missing after build: $(ls "$out")"; return 1; }
  "$out/etcd" --version | grep -q "etcd Version: $v" || { log "etcd reports $("$out/etcd" --version | head -1)"; return 1; }
  touch "$out/.complete"
}

# build_module NAME VERSION MODULE PACKAGE [LDFLAGS]: one main package of a published module, in a consumer module.
build_module() {
  local name="$1" v="$2" module="$3" pkg="$4" ldflags="-s -w ${5:-}" out="$cache/$1/v$2" work="$cache/src/$1-v$2"
  [ -f "$out/.complete" ] && return 0
  log "building $name v$v"
  rm -rf "$work" "$out"; mkdir -p "$work" "$out"
  printf 'module kha.local/%s-v%s\ngo 1.24\n' "$name" "$v" >"$work/go.mod"
  (cd "$work" && go get "$module@v$v" >&2)
  (cd "$work" && go build -trimpath -ldflags "$ldflags" -o "$out/" "$pkg" >&2)
  touch "$out/.complete"
}

# The lab's own stand-ins (kube-vip, calico-node, pause): our code, rebuilt when it changes.
build_standins() {
  local src=src/lab/real/standins hash out
  hash=$(cd "$src" && find . -type f \( -name '*.go' -o -name 'go.mod' -o -name 'go.sum' \) -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)
  out="$cache/standins/$hash"
  [ -f "$out/.complete" ] && return 0
  log "building the lab stand-ins ($hash)"
  rm -rf "$out"; mkdir -p "$out"
  (cd "$src" && go build -trimpath -ldflags "-s -w" -o "$out/" ./kube-vip ./calico-node ./pause >&2)
  touch "$out/.complete"
}


build_etcd
build_module crictl "$crictl_version" "sigs.k8s.io/cri-tools/cmd/crictl" sigs.k8s.io/cri-tools/cmd/crictl "-X sigs.k8s.io/cri-tools/pkg/version.Version=v$crictl_version"
build_module coredns "$coredns_version" github.com/coredns/coredns github.com/coredns/coredns
build_standins
for v in "${versions[@]}"; do build_kube "$v"; done
echo "$cache"
