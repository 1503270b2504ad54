// Building blocks for rendered bash scripts: quoting, a small helper library embedded in every
// script, and file blocks that write embedded content only when it differs from what is there.
import type { RenderedFile, RenderedScript } from './types';

/** Single-quotes a value for bash. Spec values are pattern-checked already; this is the second fence. */
export function q(value: string | number): string {
  const s = String(value);
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(s)) return `'${s}'`;
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** File mode as the octal digits chmod and `stat -c %a` use, e.g. 0o644 -> "644". */
export function octal(mode: number): string {
  return mode.toString(8);
}

/** Joins shell lines, dropping empty fragments produced by conditionals. */
export function lines(...parts: Array<string | false | null | undefined | string[]>): string {
  const out: string[] = [];
  for (const p of parts) {
    if (p === false || p === null || p === undefined) continue;
    if (Array.isArray(p)) out.push(...p);
    else out.push(p);
  }
  return out.join('\n');
}

// The helper library. Every script carries its own copy of the functions it calls (found by
// name, with their dependencies), so it runs without anything installed by kha on the host.
interface LibFunction {
  name: string;
  deps: string[];
  code: string;
}

const LIB: LibFunction[] = [
  { name: 'kha_log', deps: [], code: String.raw`kha_log() { printf 'kha: %s\n' "$*" >&2; }` },
  { name: 'kha_die', deps: [], code: String.raw`kha_die() {
  printf 'kha: error: %s\n' "$*" >&2
  exit 1
}` },
  { name: 'kha_have', deps: [], code: String.raw`kha_have() { command -v "$1" >/dev/null 2>&1; }` },
  {
    name: 'kha_result',
    deps: [],
    code: String.raw`# kha_result KIND JSON: reports a result to kha as one stdout line (read by src/render/result.ts only).
kha_result() { printf 'KHA-%s %s\n' "$1" "$2"; }`,
  },
  {
    name: 'kha_already',
    deps: ['kha_log'],
    code: String.raw`# kha_already MESSAGE: the work was already done; the step reports it.
KHA_ALREADY=false
kha_already() {
  kha_log "$*"
  KHA_ALREADY=true
}`,
  },
  {
    name: 'kha_reporting',
    deps: ['kha_result'],
    code: String.raw`# kha_reporting KIND PATTERN COMMAND...: runs COMMAND with all its output on stderr (stdout carries only kha's
# results); when it fails with output matching PATTERN (grep -Ei), reports the failure as KIND.
kha_reporting() {
  local kind="$1" pattern="$2" out rc=0
  shift 2
  out="$(mktemp)"
  { "$@" 2>&1 1>&3 3>&- | tee -- "$out" >&2; } 3>&2 || rc=$?
  if [ "$rc" != 0 ] && grep -Eiq -- "$pattern" "$out"; then
    kha_result FAILURE "{\"kind\":\"$kind\"}"
  fi
  rm -f -- "$out"
  return "$rc"
}`,
  },
  {
    name: 'kha_apt',
    deps: ['kha_reporting'],
    code: String.raw`# kha_apt ARGS...: apt-get ARGS, a busy lock or an unreachable mirror reported as such (worth another try).
kha_apt() { kha_reporting apt-unavailable 'Could not get lock|Temporary failure|Connection timed out|Hash Sum mismatch' apt-get "$@"; }`,
  },
  {
    name: 'kha_key_fingerprints',
    deps: [],
    code: String.raw`# kha_key_fingerprints FILE: the primary-key fingerprints of an OpenPGP key file (armored or binary), one a line.
# A throw-away home keeps root's keyring untouched.
kha_key_fingerprints() {
  local home rc=0
  home="$(mktemp -d)"
  gpg --batch --homedir "$home" --show-keys --with-colons "$1" 2>/dev/null |
    awk -F: '$1 == "pub" { want = 1; next } $1 == "fpr" && want { print $10 } { want = 0 }' || rc=$?
  rm -rf -- "$home"
  return "$rc"
}`,
  },
  {
    name: 'kha_key_pinned',
    deps: ['kha_key_fingerprints'],
    code: String.raw`# kha_key_pinned FILE FINGERPRINT: whether the key file holds the key with that fingerprint.
kha_key_pinned() {
  local f
  for f in $(kha_key_fingerprints "$1" || true); do
    if [ "$f" = "$2" ]; then return 0; fi
  done
  return 1
}`,
  },
  {
    name: 'kha_fetch_key',
    deps: ['kha_key_pinned', 'kha_die'],
    code: String.raw`# kha_fetch_key URL FILE FINGERPRINT FIELD: downloads a repository's signing key into FILE, only if it is the
# pinned one (FIELD names the spec setting in the refusal).
kha_fetch_key() {
  local url="$1" out="$2" fpr="$3" field="$4" tmp got
  tmp="$(mktemp)"
  curl -fsSL "$url" -o "$tmp"
  if ! kha_key_pinned "$tmp" "$fpr"; then
    got="$(kha_key_fingerprints "$tmp" | tr '\n' ' ' || true)"
    got="${'$'}{got% }"
    rm -f -- "$tmp"
    kha_die "the key at $url has fingerprint ${'$'}{got:-(none)}, not the pinned $fpr ($field); refusing it"
  fi
  mv -f -- "$tmp" "$out"
}`,
  },
  {
    name: 'kha_write_file',
    deps: ['kha_log'],
    code: String.raw`# kha_write_file PATH MODE < content
# Replaces PATH only when the content differs, so a second run changes nothing; sets KHA_CHANGED
# to 1 or 0 and counts changes in KHA_CHANGES. The temporary file is a dot file next to PATH: kubelet ignores
# dot files in the static pod directory.
KHA_CHANGED=0
KHA_CHANGES=0
kha_write_file() {
  local path="$1" mode="$2" dir base tmp replaced=0
  # Parameter expansion and noclobber (O_EXCL) instead of dirname, basename and mktemp: a script writes many
  # files, and every process counts on a busy host.
  local -
  set -C
  dir="${'$'}{path%/*}"
  base="${'$'}{path##*/}"
  [ -d "${'$'}{dir:-/}" ] || mkdir -p -- "${'$'}{dir:-/}"
  tmp="$dir/.$base.kha.$$.$RANDOM$RANDOM"
  cat >"$tmp"
  KHA_CHANGED=0
  if [ -f "$path" ] && cmp -s -- "$tmp" "$path"; then
    rm -f -- "$tmp"
  else
    chmod "$mode" "$tmp"
    if mv -f -- "$tmp" "$path" 2>/dev/null; then
      replaced=1
    else
      # A bind-mounted file cannot be replaced, only rewritten.
      cat -- "$tmp" >|"$path"
      rm -f -- "$tmp"
    fi
    KHA_CHANGED=1
  fi
  if [ "$replaced" = 0 ] && [ "$(stat -c '%a' -- "$path")" != "$mode" ]; then
    chmod "$mode" "$path"
    KHA_CHANGED=1
  fi
  if [ "$KHA_CHANGED" = 1 ]; then
    KHA_CHANGES=$((KHA_CHANGES + 1))
    kha_log "wrote $path"
  fi
}`,
  },
  { name: 'kha_changed', deps: ['kha_write_file'], code: String.raw`kha_changed() { [ "$KHA_CHANGED" = 1 ]; }` },
  {
    name: 'kha_wait',
    deps: ['kha_die', 'kha_result'],
    code: String.raw`# kha_wait SECONDS WHAT COMMAND...: runs COMMAND until it succeeds or time is up, first every 0.2 s, backing off
# to every 2 s (most waits end within a second; a long one should not poll hard). Running out of time is reported.
kha_wait() {
  local timeout="$1" what="$2" start pause=0.2
  shift 2
  start="$(date +%s)"
  until "$@"; do
    if [ $(($(date +%s) - start)) -ge "$timeout" ]; then
      kha_result FAILURE '{"kind":"timeout"}'
      kha_die "timed out after $timeout s waiting for $what"
    fi
    sleep "$pause"
    case "$pause" in 0.2) pause=0.5 ;; 0.5) pause=1 ;; *) pause=2 ;; esac
  done
}`,
  },
  {
    name: 'kha_once',
    deps: ['kha_log', 'kha_redact', 'kha_result'],
    code: String.raw`# kha_once NAME EFFECT COMMAND...: runs COMMAND to completion at most once, even if this script's SSH session
# dies half-way (kubeadm init/join must not be killed in the middle): COMMAND runs in its own session with its
# output in a 0600 log (relayed to stderr: stdout carries only kha's results); a later run waits for a COMMAND
# still running, reuses a success, and re-runs after a failure. kubeadm's preflight refusing the host is
# reported as such: trying again does not fix it. A success counts only while EFFECT, a file COMMAND creates, exists: after a manual kubeadm reset the
# command runs again.
kha_once() {
  local name="$1" effect="$2" dir=/var/lib/kha/once boot pid rc
  shift 2
  local log="$dir/$name.log" pidf="$dir/$name.pid" rcf="$dir/$name.rc"
  boot="$(cat /proc/sys/kernel/random/boot_id)"
  install -d -m 0700 "$dir"
  if [ -f "$rcf" ] && [ "$(cat -- "$rcf")" = 0 ]; then
    if [ -e "$effect" ]; then
      kha_log "$name already ran to completion; reusing its result"
      kha_redact <"$log" >&2
      return 0
    fi
    kha_log "$name ran to completion before, but $effect is gone (reset since?); running it again"
    rm -f -- "$rcf"
  fi
  pid=""
  if [ -f "$pidf" ] && [ "$(cut -d' ' -f1 "$pidf")" = "$boot" ]; then pid="$(cut -d' ' -f2 "$pidf")"; fi
  if [ -n "$pid" ] && [ ! -f "$rcf" ] && kill -0 "$pid" 2>/dev/null; then
    kha_log "$name is still running from an earlier attempt (pid $pid); waiting for it"
  else
    rm -f -- "$rcf"
    : >"$log"
    chmod 600 "$log"
    # shellcheck disable=SC2016 # the inner script expands its own arguments
    setsid bash -c 'log="$1" rcf="$2"; shift 2; "$@" >>"$log" 2>&1; echo "$?" >"$rcf.tmp"; mv -f "$rcf.tmp" "$rcf"' \
      kha-once "$log" "$rcf" "$@" </dev/null >/dev/null 2>&1 &
    pid="$!"
    echo "$boot $pid" >"$pidf"
  fi
  # Our own child ends the wait at once; one from an earlier attempt is polled. The rc file marks the end; a
  # process gone without one was killed (reboot, OOM).
  wait "$pid" 2>/dev/null || true
  while [ ! -f "$rcf" ] && kill -0 "$pid" 2>/dev/null; do sleep 0.2; done
  kha_redact <"$log" >&2
  if [ ! -f "$rcf" ]; then
    kha_log "$name ended without an exit status (killed?)"
    return 1
  fi
  rc="$(cat -- "$rcf")"
  if [ "$rc" != 0 ] && grep -Fq 'error execution phase preflight: [preflight] Some fatal errors' -- "$log"; then
    kha_result FAILURE '{"kind":"kubeadm-preflight"}'
  fi
  return "$rc"
}`,
  },
  {
    name: 'kha_redact',
    deps: [],
    code: String.raw`# Masks bootstrap tokens and 64-hex keys in tool output before it reaches any log.
kha_redact() {
  sed -E -e 's/[a-z0-9]{6}\.[a-z0-9]{16}/<redacted>/g' -e 's/[a-fA-F0-9]{64}/<redacted>/g'
}`,
  },
  {
    name: 'kha_kubeconfig_server',
    deps: [],
    code: String.raw`# kha_kubeconfig_server FILE: the server URL of the first cluster in a kubeconfig.
kha_kubeconfig_server() { awk '$1 == "server:" { print $2; exit }' "$1"; }`,
  },
];

/** The library functions `body` calls, with their dependencies, in library order. */
export function libraryFor(body: string): string {
  const wanted = new Set<string>();
  const add = (name: string) => {
    if (wanted.has(name)) return;
    wanted.add(name);
    for (const d of LIB.find((f) => f.name === name)?.deps ?? []) add(d);
  };
  // Functions may call each other; repeat until nothing new is found.
  let size = -1;
  while (size !== wanted.size) {
    size = wanted.size;
    const text = [body, ...LIB.filter((f) => wanted.has(f.name)).map((f) => f.code)].join('\n');
    for (const f of LIB) if (new RegExp(`\\b${f.name}\\b`).test(text)) add(f.name);
  }
  return LIB.filter((f) => wanted.has(f.name))
    .map((f) => f.code)
    .join('\n');
}

export interface ScriptInput {
  cluster: string;
  node: string;
  phase: string;
  name: string;
  /** One line saying what the script does. */
  summary: string;
  body: string;
  runsOn?: RenderedScript['runsOn'];
  secretEnv?: string[];
  sensitiveOutput?: boolean;
  /** Set DEBIAN_FRONTEND for apt. */
  apt?: boolean;
  /** End with the STEP result (files changed, work found done) the activity reads when the body gets there. */
  step?: boolean;
}

/** Text for a comment line: a line break would end the comment and make the rest a command. */
function commentText(s: string): string {
  return s.replace(/[\u0000-\u001f\u007f\u2028\u2029]/g, ' ');
}

const STEP_RESULT = String.raw`kha_result STEP "{\"changes\":${'$'}{KHA_CHANGES:-0},\"already\":${'$'}{KHA_ALREADY:-false}}"`;

export function script(input: ScriptInput): RenderedScript {
  const own = input.body.replace(/\n+$/, '');
  const body = input.step ? lines(own, STEP_RESULT) : own;
  const content = lines(
    '#!/usr/bin/env bash',
    commentText(`# kha ${input.phase}/${input.name} for node ${input.node} of cluster ${input.cluster}.`),
    commentText(`# ${input.summary}`),
    '# Rendered by kha from the cluster spec; safe to run more than once.',
    'set -euo pipefail',
    'export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    'export LC_ALL=C',
    input.apt ? 'export DEBIAN_FRONTEND=noninteractive' : null,
    '',
    libraryFor(body),
    '',
    body,
    '',
  );
  return {
    name: input.name,
    runsOn: input.runsOn ?? 'node',
    content,
    secretEnv: input.secretEnv ?? [],
    sensitiveOutput: input.sensitiveOutput ?? false,
  };
}

/** A file with content normalised to end in one newline, as a heredoc writes it. */
export function file(path: string, content: string, mode = 0o644, variant?: string): RenderedFile {
  const body = content.endsWith('\n') ? content : `${content}\n`;
  return variant ? { path, content: body, mode, variant } : { path, content: body, mode };
}

function delimiterFor(content: string): string {
  let n = 0;
  let d = 'KHA_EOF';
  const taken = new Set(content.split('\n'));
  while (taken.has(d)) d = `KHA_EOF_${++n}`;
  return d;
}

/** Shell that writes `f` through kha_write_file from a quoted heredoc (no expansion inside). */
export function writeFile(f: RenderedFile): string {
  const d = delimiterFor(f.content);
  return `kha_write_file ${q(f.path)} ${q(octal(f.mode))} <<'${d}'\n${f.content}${d}`;
}

/** apt helpers for scripts that install packages: updates the index once, installs only what is missing. */
export const APT_LIB = lines(
  'apt_updated=0',
  '# apt_install PKG...: installs the packages that are not installed yet.',
  'apt_install() {',
  '  local missing=() p',
  '  for p in "$@"; do',
  '    if ! dpkg-query -W -f="\\${Status}" "$p" 2>/dev/null | grep -q "install ok installed"; then missing+=("$p"); fi',
  '  done',
  '  [ "${#missing[@]}" -gt 0 ] || return 0',
  '  if [ "$apt_updated" = 0 ]; then',
  '    kha_apt update -q',
  '    apt_updated=1',
  '  fi',
  '  kha_apt install -y -q "${missing[@]}"',
  '}',
);
