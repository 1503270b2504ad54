// The Temporal Web UI of the embedded server, seen in Debian's chromium (headless, playwright-core) while kha
// deploys 3+3 lab hosts: the workflow list and its KhaCluster filter, the current-details progress table, the
// activity summaries naming phase and node, and a deployment waiting for approval. A second deployment (of
// loopback addresses nothing listens on) waits for a decision, so the filter has something to leave out.
// Screenshots go to test-artifacts/webui/. The page may contact only loopback and lab addresses.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import type { Page } from 'playwright-core';
import { Lab } from '../src/lab/lab';
import { deployWorkflowId, statusQuery, type DeploymentStatus } from '../src/workflows/definitions';
import { allowedHost, launchBrowser, readFrameTable, scrollTextIntoView, type Browser } from './helpers/browser';
import { cliEnv, freePort, kha, unreachableCluster } from './cli-run';
import { subnet } from './helpers/subnet';

const ARTIFACTS = join(__dirname, '..', '..', 'test-artifacts', 'webui');
const LONG = 300_000;
const UI_MS = 60_000;

/** An error that ends a wait at once. */
class Fatal extends Error {}

/** A table row as the page's DOM has it (no DOM types in this project). */
type Row = { cells: ArrayLike<{ textContent: string | null }> };

async function until<T>(what: string, fn: () => Promise<T | undefined | false>, ms = 60_000, everyMs = 500): Promise<T> {
  const end = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      if (e instanceof Fatal) throw e;
      last = e;
    }
    if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms${last ? ` (last error: ${String(last)})` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Rows of the workflow list: [status, workflow id, ...] as shown. */
async function listedWorkflows(page: Page): Promise<Array<{ status: string; id: string }>> {
  return page.locator('table tbody tr').evaluateAll((rows) =>
    rows
      .map((r) => Array.from((r as unknown as Row).cells).map((c) => (c.textContent ?? '').trim()))
      .filter((cells) => cells.some((c) => c.startsWith('kha-')))
      .map((cells) => ({ status: cells.find((c) => /^(Running|Completed|Failed|Terminated|Canceled|Timed Out)$/.test(c)) ?? '', id: cells.find((c) => c.startsWith('kha-'))! })),
  );
}


describe('the Temporal Web UI during a lab deployment, in chromium', () => {
  const dir = join(tmpdir(), `kha-webui-${subnet(64)}`);
  const file = join(dir, 'webui.yaml');
  let lab: Lab;
  let env: NodeJS.ProcessEnv;
  let port = 0;
  let ui = '';
  let workflowPage = '';
  let b: Browser;
  let connection: Connection;
  let client: Client;
  /** The deployment's status; a decision it waits for fails the test at once (nothing here answers one). */
  const status = async () => {
    const s = await client.workflow.getHandle(deployWorkflowId('webui')).query(statusQuery);
    if (s.state === 'waiting-decision') throw new Fatal(`the deployment waits for a decision: ${JSON.stringify(s.pendingDecision)}`);
    return s;
  };

  /** On failure: a screenshot (fail-NAME.png), the page's text and the HTTP errors it saw, then the error. */
  const shotOnFailure = (name: string, fn: () => Promise<void>) => async () => {
    try {
      await fn();
    } catch (e) {
      const shot = await b.screenshot(`fail-${name}`).catch(() => '(no screenshot)');
      const text = await b.page.locator('body').innerText().catch(() => '');
      (e as Error).message += `\n--- screenshot ${shot}; page text:\n${text.slice(0, 1200)}\n--- HTTP errors:\n${b.httpErrors.join('\n')}`;
      throw e;
    }
  };

  before(async () => {
    await Lab.downDir(join(dir, 'lab'));
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    rmSync(ARTIFACTS, { recursive: true, force: true });
    lab = await Lab.up({ dir: join(dir, 'lab'), controlPlanes: 3, workers: 3, subnetIndex: subnet(64), rebootDelayMs: 500 });
    // Simulated commands answer in milliseconds: give each the 250 ms a real one takes, so the deployment's early
    // phases last long enough for a browser to look at one while it runs (the first page test lifts it).
    for (const h of lab.hosts) lab.setLatency(h, 250);
    writeFileSync(file, lab.specYaml({ name: 'webui' }));
    port = await freePort();
    const uiPort = await freePort();
    ui = `http://127.0.0.1:${uiPort}`;
    env = cliEnv({ XDG_STATE_HOME: join(dir, 'state'), KHA_SERVER_PORT: String(port), KHA_UI_PORT: String(uiPort) });
    b = await launchBrowser({ artifactsDir: ARTIFACTS });
    // The UI answers slowly on a loaded machine (2 cores shared with lab hosts and the server).
    b.page.setDefaultTimeout(UI_MS);
  });

  after(async () => {
    if (b?.httpErrors.length) process.stderr.write(`webui: HTTP errors the page saw:\n${b.httpErrors.join('\n')}\n`);
    await b?.close();
    await connection?.close().catch(() => undefined);
    await kha(['server', '--stop'], env).catch(() => undefined);
    await lab?.down();
    rmSync(dir, { recursive: true, force: true });
  });

  it('kha deploy --detach starts both deployments on the embedded server with its Web UI', async () => {
    const other = await kha(['deploy', unreachableCluster('other', dir), '--detach'], env);
    assert.equal(other.code, 0, other.stdout + other.stderr);
    assert.match(other.stdout, new RegExp(`Web UI ${ui.replace(/\./g, '\\.')}`));
    const r = await kha(['deploy', file, '--detach', '--kubeconfig', join(dir, 'admin.conf')], env);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    // The link kha prints is the one the browser opens.
    workflowPage = new RegExp(`^Web UI: (${ui.replace(/\./g, '\\.')}/namespaces/default/workflows/kha-deploy-webui/[0-9a-f-]{36})$`, 'm').exec(r.stdout)?.[1] ?? '';
    assert.ok(workflowPage, r.stdout);
    connection = await Connection.connect({ address: `127.0.0.1:${port}` });
    client = new Client({ connection });
  });

  it('while a phase runs, the workflow page shows the progress table with that phase running', shotOnFailure('running', async () => {
    // Early in the deployment (commands slowed in before()): tens of seconds remain before the approval gate.
    const s = await until('an early phase running', async () => {
      const st = await status();
      return st.phases.some((p) => ['preflight', 'host-prep', 'container-runtime'].includes(p.phase) && p.state === 'running') && st;
    });
    assert.equal(s.state, 'running');
    const page = b.page;
    await page.goto(workflowPage);
    await page.getByRole('tab', { name: 'User Metadata' }).click();
    const { text, rows } = await until('current details table', () => readFrameTable(page, ['phase', 'state', 'nodes']), UI_MS);
    assert.match(text, /^webui: running/);
    assert.ok(rows.some((r) => r[1] === 'running' && r[0]!.startsWith('▶ ')), JSON.stringify(rows));
    assert.deepEqual(rows.map((r) => r[0]!.replace(/^\S+ /, '')).slice(0, 6), ['Preflight checks', 'Host preparation', 'Container runtime', 'kubeadm, kubelet, kubectl', 'kube-vip on the first control-plane node', 'kubeadm init']);
    await b.screenshot('1-deployment-running');
    for (const h of lab.hosts) lab.setLatency(h, 0);
  }));

  it('the workflow list shows the deployment, and the KhaCluster filter leaves the other one out', shotOnFailure('list', async () => {
    const gate = await until('the approval gate', async () => {
      const st: DeploymentStatus = await status();
      return st.state === 'waiting-approval' && st;
    }, 240_000, 1000);
    assert.equal(gate.currentPhase, 'approval');
    const page = b.page;
    await page.goto(`${ui}/namespaces/default/workflows`);
    const all = await until('both deployments listed', async () => {
      const w = await listedWorkflows(page);
      return w.some((x) => x.id === 'kha-deploy-webui') && w.some((x) => x.id === 'kha-deploy-other') && w;
    }, UI_MS);
    assert.deepEqual(all.find((w) => w.id === 'kha-deploy-webui')?.status, 'Running');
    await b.screenshot('2-list-all');

    // Typed into the UI's query box, as a person would.
    await page.getByTestId('toggle-manual-query').click();
    const box = page.getByTestId('manual-search-input');
    await box.fill('KhaCluster = "webui"');
    await box.press('Enter');
    const filtered = await until('the filtered list', async () => {
      const w = await listedWorkflows(page);
      return w.length > 0 && !w.some((x) => x.id === 'kha-deploy-other') && w;
    }, UI_MS);
    assert.deepEqual(filtered, [{ status: 'Running', id: 'kha-deploy-webui' }]);
    assert.equal(new URL(page.url()).searchParams.get('query'), 'KhaCluster = "webui"');
    await b.screenshot('3-list-filtered-by-cluster');

    // The same as a link: deployments of this cluster waiting for approval.
    await page.goto(`${ui}/namespaces/default/workflows?query=${encodeURIComponent('KhaCluster="webui" AND KhaState="waiting-approval"')}`);
    const waiting = await until('deployments waiting for approval', async () => {
      const w = await listedWorkflows(page);
      return w.length > 0 && w;
    }, UI_MS);
    assert.deepEqual(waiting, [{ status: 'Running', id: 'kha-deploy-webui' }]);
    await page.goto(`${ui}/namespaces/default/workflows?query=${encodeURIComponent('KhaCluster="other" AND KhaState="waiting-approval"')}`);
    await until('an empty list for the other cluster', async () => (await page.getByText(/No Workflows|no results/i).count()) > 0, UI_MS);
    assert.deepEqual(await listedWorkflows(page), []);
  }));

  it('the waiting deployment shows that it waits for approval, its progress table and activity summaries', shotOnFailure('waiting', async () => {
    const page = b.page;
    await page.goto(workflowPage);
    await page.getByRole('tab', { name: 'User Metadata' }).click();
    const { text, rows } = await until('current details table', () => readFrameTable(page, ['phase', 'state', 'nodes']), UI_MS);
    assert.match(text, /^webui: waiting-approval · Kubernetes v1\.35\.\d+$/m);
    assert.match(text, /^Waiting for approval: check the control plane, then run: kha approve webui$/m);
    const row = (title: string) => rows.find((r) => r[0]!.replace(/^\S+ /, '') === title);
    assert.deepEqual(row('kubeadm init')?.slice(0, 2), ['✔ kubeadm init', 'done']);
    assert.match(row('kubeadm init')![2]!, /^✔ k8scp-01( ×\d+)?$/);
    assert.match(row('Control-plane joins')![2]!, /^✔ k8scp-02( ×\d+)?, ✔ k8scp-03( ×\d+)?$/);
    assert.deepEqual(row('Approval before workers'), ['▶ Approval before workers', 'running', '—']);
    assert.deepEqual(row('Worker joins'), ['· Worker joins', 'pending', '· k8swn-01, · k8swn-02, · k8swn-03']);
    // Summaries of the activities, as the "Events with Metadata" list shows them.
    const body = await page.locator('main').innerText();
    for (const s of ['preflight · k8swn-02 · preflightNode', 'host-prep · k8scp-03 · hostPrep', 'kubeadm-init · k8scp-01 · kubeadmInit', 'control-plane-join · k8scp-02 · joinControlPlane']) {
      assert.ok(body.includes(s), `no activity summary "${s}" on the page`);
    }
    assert.ok(!body.includes('worker-join ·'), 'a worker joined before approval');
    await b.screenshot('4-waiting-for-approval-details');
    // The history's timeline names each activity by its summary too.
    await page.getByRole('tab', { name: /^History/ }).click();
    await until('the timeline', () => scrollTextIntoView(page, 'kubeadmInit • kubeadm-init · k8scp-01 · kubeadmInit'), UI_MS);
    await b.screenshot('5-history-timeline');
  }));

  it('after kha approve the page shows the deployment completed, with the worker joins', shotOnFailure('completed', async () => {
    const r = await kha(['approve', 'webui'], env, LONG);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const page = b.page;
    await page.goto(`${workflowPage}/user-metadata`);
    await until('the Completed badge', async () => (await page.getByText('Completed', { exact: true }).count()) > 0, UI_MS);
    const { text, rows } = await until('current details table', () => readFrameTable(page, ['phase', 'state', 'nodes']), UI_MS);
    assert.match(text, /^webui: done · Kubernetes v1\.35\.\d+$/m);
    assert.ok(rows.length === 11 && rows.every((r) => r[1] === 'done' && r[0]!.startsWith('✔ ')), JSON.stringify(rows));
    const body = await page.locator('main').innerText();
    for (const w of ['k8swn-01', 'k8swn-02', 'k8swn-03']) assert.ok(body.includes(`worker-join · ${w} · joinWorker`), `no worker-join summary for ${w}`);
    assert.ok(body.includes('verify · k8scp-01 · verifyCluster'));
    await b.screenshot('6-completed');
  }));

  it('the pages asked only for loopback addresses (anything else would have been blocked and listed)', () => {
    assert.ok(b.page.url().startsWith(ui));
    assert.deepEqual(b.blocked, []);
    // The guard itself: loopback and 198.18.0.0/15 pass, anything else does not.
    for (const h of ['127.0.0.1', 'localhost', '[::1]', '198.18.64.11', '198.19.0.1']) assert.equal(allowedHost(h), true, h);
    for (const h of ['172.31.253.11', '198.20.0.1', '10.0.0.1', 'fonts.example.com', '8.8.8.8']) assert.equal(allowedHost(h), false, h);
  });
});
