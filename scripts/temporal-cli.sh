#!/usr/bin/env bash
# Prints the path of a Temporal CLI at the pinned release, building it with `go install` when none is found.
# Order: $TEMPORAL_CLI_PATH, PATH, the Go bin directory, then `go install`. If all fail it prints nothing and
# exits 3: the test helper then lets @temporalio/testing download the CLI (works only with internet access).
# With --find-only it never builds (kha --version and kha doctor only look); exit 4 then means Go could build it.
set -euo pipefail

find_only=false
[ "${1:-}" = --find-only ] && find_only=true

pinned_module='github.com/temporalio/cli/cmd/temporal@v1.5.1'
# `go install` builds report 0.0.0-DEV, so the bundled server version identifies the release too.
pinned_re='(temporal version 1\.5\.1 |Server 1\.29\.1,)'

is_pinned() {
  [ -x "$1" ] && "$1" --version 2>/dev/null | grep -Eq "$pinned_re"
}

candidates=()
[ -n "${TEMPORAL_CLI_PATH:-}" ] && candidates+=("$TEMPORAL_CLI_PATH")
if found=$(command -v temporal 2>/dev/null); then candidates+=("$found"); fi
go_cmd=""
for g in go /usr/local/go/bin/go; do
  if command -v "$g" >/dev/null 2>&1; then go_cmd=$(command -v "$g"); break; fi
done
gobin=""
if [ -n "$go_cmd" ]; then
  gobin=$("$go_cmd" env GOBIN)
  [ -n "$gobin" ] || gobin="$("$go_cmd" env GOPATH)/bin"
  candidates+=("$gobin/temporal")
fi
candidates+=("$HOME/go/bin/temporal")

for c in "${candidates[@]}"; do
  if is_pinned "$c"; then echo "$c"; exit 0; fi
done

if [ -n "$go_cmd" ] && ! $find_only; then
  echo "temporal-cli: building $pinned_module (one time, a few minutes)" >&2
  if "$go_cmd" install "$pinned_module" >&2 && is_pinned "$gobin/temporal"; then
    echo "$gobin/temporal"
    exit 0
  fi
fi
if $find_only; then
  echo "temporal-cli: no Temporal CLI at the pinned release in TEMPORAL_CLI_PATH, PATH or ~/go/bin${go_cmd:+; $go_cmd builds it on first use (a few minutes)}" >&2
  # 4: none yet, but Go is there to build it.
  [ -n "$go_cmd" ] && exit 4
elif [ -n "$go_cmd" ]; then
  echo "temporal-cli: no Temporal CLI at the pinned release and go install $pinned_module failed" >&2
else
  echo "temporal-cli: no Temporal CLI at the pinned release and no Go toolchain to build one: install Go and run go install $pinned_module, or set TEMPORAL_CLI_PATH to that release's temporal binary" >&2
fi
exit 3
