// Requests to a lab's supervisor over its unix socket: one JSON line each way per connection.
import { createConnection } from 'node:net';
import { labPaths } from './layout';

export type ControlRequest =
  | { op: 'reboot'; host: string }
  | { op: 'unreachable'; host: string; ms: number }
  | { op: 'shutdown' }
  | { op: 'ping' };

export type ControlResponse = { ok: true } | { ok: false; error: string };

export function controlRequest(dir: string, req: ControlRequest, timeoutMs = 30_000): Promise<ControlResponse> {
  return new Promise((resolve, reject) => {
    const sock = createConnection(labPaths(dir).control);
    let buf = '';
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`lab supervisor of ${dir} did not answer ${req.op} within ${timeoutMs} ms`));
    }, timeoutMs);
    sock.setEncoding('utf8');
    sock.on('connect', () => sock.write(JSON.stringify(req) + '\n'));
    sock.on('data', (d: string) => {
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      sock.end();
      try {
        resolve(JSON.parse(buf.slice(0, nl)) as ControlResponse);
      } catch (e) {
        reject(e instanceof Error ? e : new Error(String(e)));
      }
    });
    sock.on('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`lab supervisor of ${dir} is not running (${e.message})`));
    });
  });
}
