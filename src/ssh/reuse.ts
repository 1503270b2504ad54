// SSH connections kept open between activities and shared by activities running at once on the same host.
// A deployment runs one activity after another on each host within milliseconds, and a new connection (key
// exchange, auth) costs 30-60 ms each time. And when 50 worker joins mint credentials on the first
// control-plane node at once, one connection each would also run into sshd's MaxStartups (10 unauthenticated
// connections by default, then it drops them at random): a connection carries up to `maxShare` commands at
// once instead (each its own channel; sshd allows 10 sessions per connection by default).
// A connection that saw an error takes no new callers and closes when its last caller is done; idle ones close
// after a while, so a host that went away is not trusted for long (keepalives close dead ones sooner).
import { SshSession, type ConnectOptions } from './executor';
import type { SshTarget } from './types';

interface Shared {
  session: SshSession;
  users: number;
  broken: boolean;
  idleTimer?: NodeJS.Timeout;
}

export class IdleSessions {
  private readonly byTarget = new Map<string, Shared[]>();
  private readonly entries = new Map<SshSession, { key: string; e: Shared }>();
  /** Connections being opened per target, so callers arriving together share them too. */
  private readonly opening = new Map<string, { p: Promise<SshSession>; waiting: number }[]>();

  constructor(
    private readonly idleMs = 60_000,
    private readonly maxShare = 8,
  ) {}

  /** A live connection to the same target (same settings) with room for one more command, else a new one. */
  async take(target: SshTarget, opts: ConnectOptions = {}): Promise<SshSession> {
    const key = JSON.stringify(target);
    const list = this.byTarget.get(key) ?? [];
    for (const e of list) {
      if (e.broken || !e.session.isAlive()) continue;
      if (e.users < this.maxShare) return this.lend(e);
    }
    // Join a connection that is being opened, while it has room, instead of opening another.
    const pending = this.opening.get(key) ?? [];
    const joinable = pending.find((o) => o.waiting < this.maxShare);
    if (joinable) {
      joinable.waiting++;
      const s = await joinable.p;
      const found = this.entries.get(s);
      if (found && !found.e.broken && s.isAlive()) return this.lend(found.e);
      return this.take(target, opts);
    }
    const o = { p: SshSession.connect(target, opts), waiting: 1 };
    pending.push(o);
    this.opening.set(key, pending);
    let session: SshSession;
    try {
      session = await o.p;
    } finally {
      pending.splice(pending.indexOf(o), 1);
      if (pending.length === 0) this.opening.delete(key);
    }
    const e: Shared = { session, users: 0, broken: false };
    list.push(e);
    this.byTarget.set(key, list);
    this.entries.set(session, { key, e });
    return this.lend(e);
  }

  /** Back after use; a caller that saw an error marks the connection so nobody new uses it. */
  give(session: SshSession, reusable: boolean): void {
    const found = this.entries.get(session);
    if (!found) {
      session.close();
      return;
    }
    const { key, e } = found;
    e.users = Math.max(0, e.users - 1);
    if (!reusable) e.broken = true;
    if (e.users > 0) return;
    if (e.broken || !session.isAlive() || this.idleMs <= 0) {
      this.drop(key, e);
      return;
    }
    e.idleTimer = setTimeout(() => this.drop(key, e), this.idleMs);
    e.idleTimer.unref();
  }

  /** Closes every connection nobody uses now and makes the others close when done (worker shutdown). */
  closeAll(): void {
    for (const [key, list] of [...this.byTarget]) {
      for (const e of [...list]) {
        e.broken = true;
        if (e.users === 0) this.drop(key, e);
      }
    }
  }

  /** Connections kept open (in use or idle). */
  get size(): number {
    return this.entries.size;
  }

  private lend(e: Shared): SshSession {
    if (e.idleTimer) clearTimeout(e.idleTimer);
    e.idleTimer = undefined;
    e.users++;
    return e.session;
  }

  private drop(key: string, e: Shared): void {
    if (e.idleTimer) clearTimeout(e.idleTimer);
    const list = this.byTarget.get(key);
    const i = list?.indexOf(e) ?? -1;
    if (i >= 0) list!.splice(i, 1);
    if (list && list.length === 0) this.byTarget.delete(key);
    this.entries.delete(e.session);
    e.session.close();
  }
}
