// systemctl, modprobe, sysctl, swapoff/swapon, reboot/shutdown, ufw, netplan.
import * as path from 'node:path';
import * as fs from 'node:fs';
import { err, hostname, hp, labDir, now, out, readJson, readText, sleepMs, stateDir, writeJson } from './env';
import {
  KNOWN_MODULES, activeUnits, parseSysctlFile, applySysctlFiles, fstabSwapEntries, installed, loadModule, loadedModules, normKey,
  normUnit, saveActiveUnits, saveUnitFiles, setSwap, swapOn, swapUnitName, sysctlSet, sysctlValues, unitExists,
  unitFiles, unloadModule,
} from './host';

function unitSuffix(u: string): string {
  return u.includes('.') ? u : `${u}.service`;
}

/** kubelet without its config crash-loops: systemd shows it "activating (auto-restart)". */
function effectiveState(unit: string): string {
  const st = activeUnits()[unit];
  if (st !== 'active') return st ?? 'inactive';
  if (unit === 'kubelet' && !fs.existsSync(hp('/var/lib/kubelet/config.yaml'))) return 'activating';
  return 'active';
}

export function systemctl(args: string[]): number {
  const opts = args.filter((a) => a.startsWith('-'));
  const words = args.filter((a) => !a.startsWith('-'));
  const verb = words[0] ?? 'list-units';
  const units = words.slice(1).map(normUnit);
  const now_ = opts.includes('--now');
  const quiet = opts.includes('-q') || opts.includes('--quiet');
  const files = unitFiles();
  const active = activeUnits();
  const notFound = (u: string, what: string) => {
    err(`Failed to ${what} ${unitSuffix(u)}: Unit ${unitSuffix(u)} not found.`);
    return 5;
  };
  switch (verb) {
    case 'daemon-reload':
    case 'reset-failed':
      return 0;
    case 'start':
    case 'restart':
    case 'reload':
    case 'try-restart':
    case 'reload-or-restart': {
      for (const u of units) {
        if (!unitExists(u)) return notFound(u, verb === 'start' ? 'start' : 'restart');
        if (files[u]?.masked) {
          err(`Failed to ${verb === 'start' ? 'start' : 'restart'} ${unitSuffix(u)}: Unit ${unitSuffix(u)} is masked.`);
          return 1;
        }
        if (u === 'containerd' && containerdConfigBroken()) {
          active[u] = 'failed';
          saveActiveUnits(active);
          err(`Job for containerd.service failed because the control process exited with error code.\nSee "systemctl status containerd.service" and "journalctl -xeu containerd.service" for details.`);
          return 1;
        }
        active[u] = 'active';
        if (u.endsWith('.swap')) setSwap(true);
      }
      saveActiveUnits(active, verb === 'start' || verb === 'reload' ? [] : units);
      return 0;
    }
    case 'stop': {
      for (const u of units) {
        if (!unitExists(u) && !active[u]) {
          err(`Failed to stop ${unitSuffix(u)}: Unit ${unitSuffix(u)} not loaded.`);
          return 5;
        }
        delete active[u];
        if (u.endsWith('.swap') || u === 'swap.target') setSwap(false);
      }
      saveActiveUnits(active);
      return 0;
    }
    case 'enable':
    case 'disable':
    case 'mask':
    case 'unmask': {
      for (const u of units) {
        const swapish = u.endsWith('.swap') || u === 'swap.target';
        if (!unitExists(u) && !(verb === 'mask' && swapish) && verb !== 'unmask') {
          if (verb === 'disable') continue; // disabling what is not there is not an error for scripts
          err(`Failed to ${verb} unit: Unit file ${unitSuffix(u)} does not exist.`);
          return 1;
        }
        const f = (files[u] ??= {});
        if (verb === 'enable') {
          if (f.masked) {
            err(`Failed to enable unit: Unit file /etc/systemd/system/${unitSuffix(u)} is masked.`);
            return 1;
          }
          if (!f.enabled && !quiet) err(`Created symlink /etc/systemd/system/multi-user.target.wants/${unitSuffix(u)} → /lib/systemd/system/${unitSuffix(u)}.`);
          f.enabled = true;
          if (now_) active[u] = 'active';
        } else if (verb === 'disable') {
          if (f.enabled && !quiet) err(`Removed "/etc/systemd/system/multi-user.target.wants/${unitSuffix(u)}".`);
          f.enabled = false;
          if (now_) {
            delete active[u];
            if (swapish) setSwap(false);
          }
        } else if (verb === 'mask') {
          if (!f.masked && !quiet) err(`Created symlink /etc/systemd/system/${unitSuffix(u)} → /dev/null.`);
          f.masked = true;
          if (now_) delete active[u];
        } else {
          if (f.masked && !quiet) err(`Removed "/etc/systemd/system/${unitSuffix(u)}".`);
          f.masked = false;
        }
      }
      saveUnitFiles(files);
      saveActiveUnits(active);
      return 0;
    }
    case 'is-active': {
      let rc = 0;
      for (const u of units) {
        const s = unitExists(u) ? effectiveState(u) : 'inactive';
        if (!quiet) out(s);
        if (s !== 'active') rc = 3;
      }
      return rc;
    }
    case 'is-enabled': {
      let rc = 0;
      for (const u of units) {
        if (!unitExists(u) && !files[u]?.masked) {
          if (!quiet) err(`Failed to get unit file state for ${unitSuffix(u)}: No such file or directory`);
          rc = 1;
          continue;
        }
        const s = files[u]?.masked ? 'masked' : files[u]?.enabled ? 'enabled' : 'disabled';
        if (!quiet) out(s);
        if (s !== 'enabled') rc = 1;
      }
      return rc;
    }
    case 'is-failed':
      return units.some((u) => active[u] === 'failed') ? 0 : 1;
    case 'status': {
      let rc = 0;
      for (const u of units) {
        if (!unitExists(u)) {
          err(`Unit ${unitSuffix(u)} could not be found.`);
          rc = 4;
          continue;
        }
        const s = effectiveState(u);
        const en = files[u]?.masked ? 'masked' : files[u]?.enabled ? 'enabled' : 'disabled';
        out(`● ${unitSuffix(u)}\n     Loaded: loaded (/lib/systemd/system/${unitSuffix(u)}; ${en}; preset: enabled)\n     Active: ${s === 'active' ? 'active (running)' : s === 'activating' ? 'activating (auto-restart)' : s === 'failed' ? 'failed' : 'inactive (dead)'}`);
        if (s !== 'active') rc = 3;
      }
      return rc;
    }
    case 'list-units':
    case 'list-unit-files': {
      const type = (opts.find((o) => o.startsWith('--type=')) ?? '').slice(7) || (args.includes('--type') ? args[args.indexOf('--type') + 1] : '');
      const names = new Set<string>([...Object.keys(files), ...Object.keys(active)]);
      for (const d of fstabSwapEntries()) names.add(swapUnitName(d));
      for (const n of [...names].sort()) {
        const full = unitSuffix(n);
        if (type && !full.endsWith(`.${type}`)) continue;
        if (verb === 'list-units') {
          const s = active[n] ?? 'inactive';
          if (s !== 'active' && !opts.includes('--all') && !opts.includes('-a')) continue;
          out(`${full} loaded ${s} ${s === 'active' ? 'running' : 'dead'} ${n}`);
        } else out(`${full} ${files[n]?.masked ? 'masked' : files[n]?.enabled ? 'enabled' : 'disabled'} enabled`);
      }
      return 0;
    }
    case 'reboot':
    case 'poweroff':
      return requestReboot('systemctl ' + verb);
    default:
      err(`Unknown command verb ${verb}.`);
      return 1;
  }
}

function containerdConfigBroken(): boolean {
  const text = readText(hp('/etc/containerd/config.toml'));
  if (!text) return false;
  const m = /^\s*version\s*=\s*(\d+)/m.exec(text);
  const inst = installed();
  const ver = inst['containerd.io']?.version ?? inst['containerd']?.version ?? '';
  // containerd 1.x cannot read a version 3 configuration.
  return m?.[1] === '3' && /^1\./.test(ver);
}

export function modprobe(args: string[]): number {
  const remove = args.includes('-r') || args.includes('--remove');
  const names = args.filter((a) => !a.startsWith('-'));
  if (names.length === 0) {
    err('modprobe: ERROR: missing parameters. See -h.');
    return 1;
  }
  const list = args.includes('-a') || args.includes('--all') || remove ? names : [names[0]!];
  for (const n of list) {
    const name = n.replace(/-/g, '_');
    if (!KNOWN_MODULES.has(name)) {
      err(`modprobe: FATAL: Module ${n} not found in directory /lib/modules/6.1.0-sim-amd64`);
      return 1;
    }
    if (remove) unloadModule(name);
    else loadModule(name);
  }
  return 0;
}

export function lsmod(): number {
  out('Module                  Size  Used by');
  for (const m of loadedModules()) out(`${m.padEnd(24)}${'32768'.padStart(6)}  0`);
  return 0;
}

export function sysctl(args: string[]): number {
  const quiet = args.includes('-q') || args.includes('--quiet');
  const valueOnly = args.includes('-n') || args.includes('--values');
  if (args.includes('--system')) {
    const r = applySysctlFiles();
    if (!quiet) for (const l of r.lines) out(l);
    for (const e of r.errors) err(e);
    return 0; // like procps: --system reports but does not fail on unknown keys
  }
  if (args.includes('-p') || args.includes('--load') || args.some((a) => a.startsWith('--load='))) {
    const i = args.findIndex((a) => a === '-p' || a === '--load');
    const file = i >= 0 && args[i + 1] && !args[i + 1]!.startsWith('-') ? args[i + 1]! : '/etc/sysctl.conf';
    const text = readText(hp(file));
    if (text === undefined) {
      err(`sysctl: cannot open "${file}": No such file or directory`);
      return 255;
    }
    let rc = 0;
    for (const [k, v] of parseSysctlFile(text)) {
      if (sysctlSet(k, v)) {
        if (!quiet) out(`${k} = ${v}`);
      } else {
        err(`sysctl: cannot stat /proc/sys/${k.replace(/\./g, '/')}: No such file or directory`);
        rc = 255;
      }
    }
    return rc;
  }
  const vals = sysctlValues();
  if (args.includes('-a') || args.includes('--all')) {
    for (const k of Object.keys(vals).sort()) out(`${k} = ${vals[k]}`);
    return 0;
  }
  const write = args.includes('-w') || args.includes('--write');
  let rc = 0;
  for (const a of args.filter((x) => !x.startsWith('-'))) {
    const eq = a.indexOf('=');
    if (eq > 0 || write) {
      if (eq < 0) {
        err(`sysctl: "${a}" must be of the form name=value`);
        rc = 255;
        continue;
      }
      const k = normKey(a.slice(0, eq));
      const v = a.slice(eq + 1);
      if (!sysctlSet(k, v)) {
        err(`sysctl: cannot stat /proc/sys/${k.replace(/\./g, '/')}: No such file or directory`);
        rc = 255;
      } else if (!quiet) out(`${k} = ${v}`);
    } else {
      const k = normKey(a);
      if (!(k in vals)) {
        err(`sysctl: cannot stat /proc/sys/${k.replace(/\./g, '/')}: No such file or directory`);
        rc = 255;
      } else out(valueOnly ? vals[k]! : `${k} = ${vals[k]}`);
    }
  }
  return rc;
}

export function swapoff(args: string[]): number {
  if (args.includes('-a') || args.includes('--all') || args.some((a) => !a.startsWith('-'))) setSwap(false);
  return 0;
}

export function swapon(args: string[]): number {
  if (args.includes('--show') || args.includes('-s') || args.includes('--summary') || args.length === 0) {
    if (swapOn()) {
      const devs = fstabSwapEntries();
      if (args.includes('--show') && !args.includes('--noheadings')) out('NAME      TYPE SIZE USED PRIO');
      for (const d of devs.length ? devs : ['/swap.img']) out(args.includes('--show') ? `${d} file   2G   0B   -2` : `${d}\tfile\t2097148\t0\t-2`);
    }
    return 0;
  }
  if (args.includes('-a') || args.includes('--all')) {
    if (fstabSwapEntries().length && !unitFiles()['swap.target']?.masked) setSwap(true);
    return 0;
  }
  setSwap(true);
  return 0;
}

/** Contents the simulated /proc/swaps would have (kubeadm's swap check reads it). */
export function procSwapsLines(): string[] {
  const lines = ['Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority'];
  if (swapOn()) for (const d of fstabSwapEntries().length ? fstabSwapEntries() : ['/swap.img']) lines.push(`${d}\tfile\t\t2097148\t\t0\t\t-2`);
  return lines;
}

/** Ask the lab to reboot this host, then wait to be killed like any process on a rebooting machine. */
export function requestReboot(reason: string): number {
  writeJson(path.join(labDir(), 'reboot-requests', `${hostname()}.json`), { requestedAt: now(), reason });
  // The lab stops this host's processes; if nobody acts within a minute, report it rather than hang forever.
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) sleepMs(200);
  err('reboot: the lab did not act on the reboot request');
  return 1;
}

export function reboot(tool: string, args: string[]): number {
  if (tool === 'shutdown' && !args.includes('-r') && !args.includes('--reboot')) {
    if (args.includes('-c')) return 0;
  }
  return requestReboot(`${tool} ${args.join(' ')}`.trim());
}

interface UfwState {
  enabled: boolean;
}
export function ufw(args: string[]): number {
  const file = path.join(stateDir(), 'ufw.json');
  const s = readJson<UfwState>(file, { enabled: false });
  const v = args.filter((a) => !a.startsWith('-'))[0] ?? '';
  switch (v) {
    case 'disable':
      writeJson(file, { enabled: false });
      out('Firewall stopped and disabled on system startup');
      return 0;
    case 'enable':
      writeJson(file, { enabled: true });
      out('Firewall is active and enabled on system startup');
      return 0;
    case 'status':
      out(`Status: ${s.enabled ? 'active' : 'inactive'}`);
      return 0;
    case 'allow':
    case 'deny':
    case 'reload':
    case 'default':
      out(s.enabled ? 'Rule added' : 'Rules updated');
      return 0;
    default:
      err(`ERROR: Invalid syntax`);
      return 1;
  }
}

export function netplan(args: string[]): number {
  const v = args.filter((a) => !a.startsWith('-'))[0] ?? '';
  if (['apply', 'generate', 'try', 'get', 'set', 'status'].includes(v)) return 0;
  err(`netplan: error: invalid choice: '${v}'`);
  return 2;
}
