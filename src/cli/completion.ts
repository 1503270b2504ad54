// `kha completion bash|zsh`: a completion script. Commands, options and what each argument is come from the
// commands' own --help texts when the script is generated; cluster and node names are asked of the server at
// TAB time through the hidden `kha completion __clusters` and `kha completion __nodes CLUSTER`.
import type { Command } from './help';
import { usageText } from './help';
import { didYouMean } from './suggest';

const USAGE = `usage: kha completion bash|zsh

Prints a completion script: commands, options, cluster files, cluster names known to the Temporal server and
node names of a running deployment.
  bash: source <(kha completion bash)    in ~/.bashrc (or save it to /etc/bash_completion.d/kha)
  zsh:  source <(kha completion zsh)     in ~/.zshrc (it uses zsh's bashcompinit)
`;

/** What an argument is: file (left to the shell's file completion), cluster, node, command, fixed words, or none. */
export type Kind = 'file' | 'cluster' | 'node' | 'command' | 'none' | `words:${string}`;

export interface CommandSpec {
  options: string[];
  /** Options that take a value, with the value's kind. */
  values: Record<string, Kind>;
  /** Kinds of the positional arguments in order; a last kind ending in "..." repeats. */
  positionals: Kind[];
  repeats: boolean;
  subcommands?: Record<string, CommandSpec>;
}

function placeholderKind(p: string, option?: string): Kind {
  const bare = p.replace(/\.\.\.$/, '');
  if (option === '--node') return 'node';
  // `NODE|--all`: a placeholder or an option in its place; the placeholder says what to complete.
  const alternatives = bare.split('|');
  if (alternatives.length > 1 && /^[A-Z]/.test(alternatives[0]!)) return placeholderKind(alternatives[0]!, option);
  if (/^(FILE|PATH|DIR)$/.test(bare)) return 'file';
  if (bare === 'CLUSTER') return 'cluster';
  if (bare === 'NODE') return 'node';
  if (bare === 'COMMAND') return 'command';
  if (/^[a-z][a-z0-9-]*(\|[a-z][a-z0-9-]*)+$/.test(bare)) return `words:${bare.split('|').join(' ')}`;
  return 'none';
}

function emptySpec(): CommandSpec {
  return { options: ['--help'], values: {}, positionals: [], repeats: false };
}

/** Reads a command's arguments from the synopsis lines of its usage text (`kha NAME [SUB] ARGS [--opt VALUE]`). */
export function specFromUsage(name: string, text: string): CommandSpec {
  const spec = emptySpec();
  const lines = text.split('\n').filter((l) => new RegExp(`^\\s*(usage:\\s*)?kha ${name}\\b`).test(l));
  for (const line of lines) {
    const words = line.replace(/^\s*(usage:\s*)?kha \S+\s*/, '').split(/\s+/).filter(Boolean);
    let target = spec;
    if (words[0] && /^[a-z][a-z-]*$/.test(words[0])) {
      spec.subcommands ??= {};
      target = spec.subcommands[words[0]] ??= emptySpec();
      words.shift();
    }
    for (let i = 0; i < words.length; i++) {
      const w = words[i]!.replace(/^\[+|\]+$/g, '');
      const opt = /^(--[a-z][a-z-]*)(?:=(\S+))?$/.exec(w);
      if (opt) {
        if (!target.options.includes(opt[1]!)) target.options.push(opt[1]!);
        const next = opt[2] ?? (words[i + 1] && !/^[[-]/.test(words[i + 1]!) && !words[i]!.endsWith(']') ? words[++i]!.replace(/\]+$/, '') : undefined);
        if (next) target.values[opt[1]!] = placeholderKind(next, opt[1]);
      } else if (/^[A-Z]/.test(w) || w.includes('|')) {
        for (const alt of w.split('|')) if (/^--[a-z][a-z-]*$/.test(alt) && !target.options.includes(alt)) target.options.push(alt);
        target.positionals.push(placeholderKind(w));
        if (w.endsWith('...')) target.repeats = true;
      }
    }
  }
  // Options only described in the text (a synopsis that is not `kha NAME ...`, as the demo's).
  if (!lines.length) for (const m of text.matchAll(/(^|[\s[])(--[a-z][a-z-]*)/g)) if (!spec.options.includes(m[2]!)) spec.options.push(m[2]!);
  return spec;
}

export async function commandSpecs(commands: Record<string, Command>): Promise<Record<string, CommandSpec>> {
  const out: Record<string, CommandSpec> = {};
  for (const [name, cmd] of Object.entries(commands)) out[name] = specFromUsage(name, await usageText(cmd));
  return out;
}

const sq = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** The table the shell function reads: commands, opts:KEY, val:KEY:--opt, pos:KEY:N (or pos:KEY:* when it repeats), subs:KEY. */
function specTable(specs: Record<string, CommandSpec>): Array<[string, string]> {
  const rows: Array<[string, string]> = [['commands', Object.keys(specs).join(' ')]];
  const add = (key: string, s: CommandSpec) => {
    rows.push([`opts:${key}`, s.options.join(' ')]);
    for (const [o, k] of Object.entries(s.values)) rows.push([`val:${key}:${o}`, k]);
    s.positionals.forEach((k, i) => rows.push([`pos:${key}:${s.repeats && i === s.positionals.length - 1 ? '*' : i}`, k]));
    if (s.subcommands) {
      rows.push([`subs:${key}`, Object.keys(s.subcommands).join(' ')]);
      for (const [sub, ss] of Object.entries(s.subcommands)) add(`${key}:${sub}`, ss);
    }
  };
  for (const [name, s] of Object.entries(specs)) add(name, s);
  return rows;
}

/** The bash function; zsh runs the same one through bashcompinit, in ksh emulation (0-based arrays, splitting). */
export function bashScript(specs: Record<string, CommandSpec>): string {
  const table = specTable(specs)
    .map(([k, v]) => `  [${sq(k)}]=${sq(v)}`)
    .join('\n');
  return `# kha completion (generated by kha completion; regenerate after upgrading kha)
declare -A _kha_spec=(
${table}
)

_kha_complete() {
  [ -n "\${ZSH_VERSION:-}" ] && emulate -L ksh
  local cur="\${COMP_WORDS[COMP_CWORD]}" key word kind="" opt="" first="" i n=0
  COMPREPLY=()
  if [ "$COMP_CWORD" -le 1 ]; then
    COMPREPLY=($(compgen -W "\${_kha_spec[commands]}" -- "$cur"))
    return 0
  fi
  key="\${COMP_WORDS[1]}"
  [ -n "\${_kha_spec[opts:$key]+set}" ] || return 0
  # The words before the current one: a subcommand, options (and their values), positionals.
  for ((i = 2; i < COMP_CWORD; i++)); do
    word="\${COMP_WORDS[i]}"
    if [ -n "$opt" ]; then
      opt=""
      continue
    fi
    case "$word" in
      --*=*) ;;
      -*) [ -n "\${_kha_spec[val:$key:$word]+set}" ] && opt="$word" ;;
      *)
        if [ "$n" -eq 0 ] && [ -n "\${_kha_spec[subs:$key]+set}" ] && [ -n "\${_kha_spec[opts:$key:$word]+set}" ]; then
          key="$key:$word"
          continue
        fi
        [ "$n" -eq 0 ] && first="$word"
        n=$((n + 1))
        ;;
    esac
  done
  if [ -n "$opt" ]; then
    kind="\${_kha_spec[val:$key:$opt]}"
  elif [ "\${cur#-}" != "$cur" ]; then
    COMPREPLY=($(compgen -W "\${_kha_spec[opts:$key]}" -- "$cur"))
    return 0
  elif [ "$n" -eq 0 ] && [ -n "\${_kha_spec[subs:$key]+set}" ]; then
    kind="words:\${_kha_spec[subs:$key]}"
  else
    kind="\${_kha_spec[pos:$key:$n]:-\${_kha_spec[pos:$key:*]:-none}}"
  fi
  # Anything but a file: no fall-back to file names when nothing matches.
  [ "$kind" != file ] && type compopt >/dev/null 2>&1 && compopt +o default 2>/dev/null
  case "$kind" in
    cluster) COMPREPLY=($(compgen -W "$("\${COMP_WORDS[0]}" completion __clusters 2>/dev/null)" -- "$cur")) ;;
    node) [ -n "$first" ] && COMPREPLY=($(compgen -W "$("\${COMP_WORDS[0]}" completion __nodes "$first" 2>/dev/null)" -- "$cur")) ;;
    command) COMPREPLY=($(compgen -W "\${_kha_spec[commands]}" -- "$cur")) ;;
    words:*) COMPREPLY=($(compgen -W "\${kind#words:}" -- "$cur")) ;;
  esac
  return 0
}
complete -o default -F _kha_complete kha
`;
}

export function zshScript(specs: Record<string, CommandSpec>): string {
  return `# kha completion for zsh: source <(kha completion zsh) in ~/.zshrc
(( \${+functions[compdef]} )) || { autoload -U compinit && compinit; }
autoload -U +X bashcompinit && bashcompinit
${bashScript(specs)}`;
}

/** Cluster names of the deployments and resets the server knows (nothing when no server answers). */
async function clusterNames(): Promise<string[]> {
  const { connectTarget } = await import('./client');
  const { OPERATION_KINDS, clusterOfWorkflowId, workflowIdPrefix } = await import('./operations');
  const t = await connectTarget({ startEmbedded: false });
  try {
    const names = new Set<string>();
    const query = OPERATION_KINDS.map((k) => `WorkflowId STARTS_WITH '${workflowIdPrefix(k)}'`).join(' OR ');
    for await (const w of t.client.workflow.list({ query, pageSize: 200 })) {
      const name = clusterOfWorkflowId(w.workflowId);
      if (name) names.add(name);
      if (names.size >= 500) break;
    }
    return [...names].sort();
  } finally {
    await t.close();
  }
}

/** Node names of the cluster's running operation, from its input (what the operator may retry or skip). */
async function nodeNames(cluster: string): Promise<string[]> {
  const { connectTarget } = await import('./client');
  const { defaultPayloadConverter } = await import('@temporalio/common');
  const { OPERATION_KINDS } = await import('./operations');
  const { latestRun } = await import('./runs');
  const t = await connectTarget({ startEmbedded: false });
  try {
    let d;
    for (const kind of OPERATION_KINDS) {
      d = (await latestRun(t, kind, cluster, 'running'))?.d;
      if (d) break;
    }
    if (!d) return [];
    const h = await t.connection.workflowService.getWorkflowExecutionHistory({ namespace: t.namespace, execution: { workflowId: d.workflowId, runId: d.runId }, maximumPageSize: 1 });
    const payload = h.history?.events?.[0]?.workflowExecutionStartedEventAttributes?.input?.payloads?.[0];
    if (!payload) return [];
    const input = defaultPayloadConverter.fromPayload<{ cluster?: { spec?: { nodes?: Array<{ name?: unknown }> } } }>(payload);
    return (input.cluster?.spec?.nodes ?? []).map((n) => n.name).filter((n): n is string => typeof n === 'string');
  } finally {
    await t.close();
  }
}

export async function run(argv: string[], commands: Record<string, Command>): Promise<number> {
  const [shell, ...rest] = argv;
  if (shell === '__clusters' || shell === '__nodes') {
    // At TAB time: print what is known within the budget (3 s), never an error (the shell would show it in the
    // command line). KHA_COMPLETION_TIMEOUT_MS widens it for a slow or remote server.
    const budget = Number(process.env.KHA_COMPLETION_TIMEOUT_MS) > 0 ? Number(process.env.KHA_COMPLETION_TIMEOUT_MS) : 3000;
    const lookup = (shell === '__clusters' ? clusterNames() : rest[0] ? nodeNames(rest[0]) : Promise.resolve([])).catch(() => []);
    const names = await Promise.race([lookup, new Promise<string[]>((r) => setTimeout(() => r([]), budget).unref())]);
    if (names.length) process.stdout.write(`${names.join('\n')}\n`);
    // A connection still being tried must not keep the shell waiting.
    process.exit(0);
  }
  if (shell === '-h' || shell === '--help') {
    process.stdout.write(USAGE);
    return 0;
  }
  if ((shell !== 'bash' && shell !== 'zsh') || rest.length) {
    process.stderr.write(`kha completion: ${shell ? `unknown shell "${[shell, ...rest].join(' ')}"${didYouMean(shell, ['bash', 'zsh'])}` : 'which shell?'}\n${USAGE}`);
    return 2;
  }
  const specs = await commandSpecs(commands);
  process.stdout.write(shell === 'bash' ? bashScript(specs) : zshScript(specs));
  return 0;
}
