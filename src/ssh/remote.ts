// The remote side of running a script, and the helpers that handle its output.
//
// The command line only ever holds the fixed wrapper below (visible in `ps`, so it holds no data).
// Over the channel's stdin we send: `export NAME=$'...'` lines, a `#script <bytes>` line, the script.
// The wrapper keeps reading stdin after that as a lifeline: when the client closes the channel
// (cancel, timeout) or the connection dies, stdin ends and the wrapper kills the script's process
// group: TERM, then KILL for whatever is left after 3 s. Signals over SSH channels are not
// dependable for non-pty sessions, so we do not use them.
import { StringDecoder } from 'node:string_decoder';

/** First stdout line of the wrapper: proves the wrapper (and sudo before it) started. */
export const READY_MARKER = 'kha-run-ready-5b1d';

/** Exit code the wrapper uses for its own failures (bad input, no temp dir). */
export const WRAPPER_FAILED = 125;

const RUN_WRAPPER = `set -u
printf '%s\\n' ${READY_MARKER}
d=$(mktemp -d "\${TMPDIR:-/tmp}/kha-run.XXXXXXXX") || exit ${WRAPPER_FAILED}
trap 'rm -rf -- "$d"' EXIT
n=
while IFS= read -r l; do
  case $l in
    "#script "*) n=\${l#"#script "}; break ;;
    "export "*) eval "$l" ;;
    *) echo "kha-run: unexpected input" >&2; exit ${WRAPPER_FAILED} ;;
  esac
done
case $n in ''|*[!0-9]*) echo "kha-run: no script received" >&2; exit ${WRAPPER_FAILED} ;; esac
head -c "$n" >"$d/script" || exit ${WRAPPER_FAILED}
[ "$(wc -c <"$d/script")" -eq "$n" ] || { echo "kha-run: script cut short" >&2; exit ${WRAPPER_FAILED}; }
exec 3<&0
setsid bash "$d/script" </dev/null 3<&- &
p=$!
(
  while read -r _; do :; done
  : >"$d/stopping"
  kill -TERM -- "-$p" || exit 0
  i=0
  while [ "$i" -lt 30 ] && kill -0 -- "-$p"; do sleep 0.1; i=$((i + 1)); done
  kill -KILL -- "-$p"
) <&3 >/dev/null 2>&1 &
w=$!
exec 3<&-
wait "$p"
rc=$?
if [ -e "$d/stopping" ]; then wait "$w"; else kill "$w" 2>/dev/null; fi
exit "$rc"`;

/** Single-quote a value for a POSIX shell. */
export function shq(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

export function sudoPrefix(useSudo: boolean): string {
  return useSudo ? 'sudo -n -- ' : '';
}

export function runCommand(useSudo: boolean): string {
  return `${sudoPrefix(useSudo)}bash -c ${shq(RUN_WRAPPER)} kha-run`;
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const SAFE_BYTE = /[A-Za-z0-9 _.,:/=@%+-]/;

/** `export NAME=$'...'` with every byte outside a small safe set written as \xHH, so one line each. */
export function exportLine(name: string, value: string): string {
  if (!ENV_NAME.test(name)) throw new Error(`invalid environment variable name ${JSON.stringify(name)}`);
  let quoted = '';
  for (const b of Buffer.from(value, 'utf8')) {
    const ch = String.fromCharCode(b);
    quoted += b < 0x80 && SAFE_BYTE.test(ch) ? ch : `\\x${b.toString(16).padStart(2, '0')}`;
  }
  return `export ${name}=$'${quoted}'`;
}

/** What goes over stdin before the lifeline: the env block, the length line, the script. */
export function runPayload(script: string, env: Record<string, string> = {}): Buffer {
  const body = Buffer.from(script, 'utf8');
  const head = Object.entries(env)
    .map(([k, v]) => exportLine(k, v) + '\n')
    .join('');
  return Buffer.concat([Buffer.from(`${head}#script ${body.length}\n`, 'utf8'), body]);
}

/** Fixed script for writeFile: atomic replace through a temp file in the same directory. */
export const WRITE_FILE_SCRIPT = `set -eu
p=$1; m=$2
d=$(dirname -- "$p")
(umask 022; mkdir -p -- "$d")
t=$(mktemp -- "$d/.kha-write.XXXXXXXX")
trap 'rm -f -- "$t"' EXIT
cat >"$t"
chmod "$m" -- "$t"
mv -f -- "$t" "$p"
trap - EXIT`;

const SUDO_PASSWORD = /sudo: (a password is required|a terminal is required to read the password|no tty present)/;

export function sudoWantsPassword(stderr: string): boolean {
  return SUDO_PASSWORD.test(stderr);
}

/** Replaces secret values in output with ***. Values shorter than 4 characters are left alone. */
export class Redactor {
  private readonly secrets: string[];
  constructor(env: Record<string, string> = {}) {
    const parts = new Set<string>();
    for (const v of Object.values(env)) {
      if (v.length >= 4) parts.add(v);
      // Lines are redacted one by one, so a multi-line secret must match line by line too.
      for (const line of v.split('\n')) if (line.trim().length >= 4) parts.add(line);
    }
    this.secrets = [...parts].sort((a, b) => b.length - a.length);
  }
  apply(s: string): string {
    let out = s;
    for (const secret of this.secrets) if (out.includes(secret)) out = out.split(secret).join('***');
    return out;
  }
}

const MAX_TAIL_LINE = 1000;

/** The last N lines of a stream, each cut to a bounded length. */
export class Tail {
  private readonly lines: string[] = [];
  constructor(private readonly max: number) {}
  push(line: string): void {
    if (this.max <= 0) return;
    this.lines.push(line.length > MAX_TAIL_LINE ? line.slice(0, MAX_TAIL_LINE) + '...' : line);
    if (this.lines.length > this.max) this.lines.shift();
  }
  toString(): string {
    return this.lines.join('\n');
  }
}

/** Splits a byte stream into lines (UTF-8 safe across chunk borders). */
export class LineSplitter {
  private readonly decoder = new StringDecoder('utf8');
  private rest = '';
  constructor(private readonly onLine: (line: string) => void) {}
  write(chunk: Buffer): void {
    const text = this.rest + this.decoder.write(chunk);
    const parts = text.split('\n');
    this.rest = parts.pop() ?? '';
    for (const p of parts) this.onLine(p.endsWith('\r') ? p.slice(0, -1) : p);
  }
  end(): void {
    const text = this.rest + this.decoder.end();
    this.rest = '';
    if (text) this.onLine(text);
  }
}
