// Connections kept open between activities: a deployment runs one activity after another on the same host
// within milliseconds, and a new SSH connection (key exchange, auth, sudo check) costs 30-60 ms each time,
// more on a loaded worker. A session is lent to one caller at a time and comes back only after a call that
// went well; idle ones close after a short while, so a host that went away is not trusted for long.
import { SshSession, type ConnectOptions } from './executor';
import type { SshTarget } from './types';

interface Idle {
  session: SshSession;
  timer: NodeJS.Timeout;
}

export class IdleSessions {
  private readonly idle = new Map<string, Idle[]>();

  constructor(
    private readonly idleMs = 60_000,
    private readonly maxPerTarget = 8,
  ) {}

  /** An idle open session to the same target with the same settings, else a new connection. */
  async take(target: SshTarget, opts: ConnectOptions = {}): Promise<SshSession> {
    const key = JSON.stringify(target);
    const list = this.idle.get(key);
    while (list?.length) {
      const e = list.pop()!;
      clearTimeout(e.timer);
      if (e.session.isAlive()) return e.session;
      e.session.close();
    }
    return SshSession.connect(target, opts);
  }

  /** Returns a session after use; one that saw an error (or a lost connection) is closed instead. */
  give(session: SshSession, reusable: boolean): void {
    const key = JSON.stringify(session.target);
    const list = this.idle.get(key) ?? [];
    if (!reusable || !session.isAlive() || this.idleMs <= 0 || list.length >= this.maxPerTarget) {
      session.close();
      return;
    }
    const entry: Idle = {
      session,
      timer: setTimeout(() => {
        const l = this.idle.get(key);
        const i = l?.indexOf(entry) ?? -1;
        if (i >= 0) l!.splice(i, 1);
        if (l && l.length === 0) this.idle.delete(key);
        session.close();
      }, this.idleMs),
    };
    entry.timer.unref();
    list.push(entry);
    this.idle.set(key, list);
  }

  /** Closes every idle session (worker shutdown; tests between labs). */
  closeAll(): void {
    for (const list of this.idle.values()) {
      for (const e of list) {
        clearTimeout(e.timer);
        e.session.close();
      }
    }
    this.idle.clear();
  }

  get size(): number {
    let n = 0;
    for (const l of this.idle.values()) n += l.length;
    return n;
  }
}
