// The Web UI test's in-page helpers, in Debian's chromium, on a page that does what the Temporal UI does to a
// running workflow: it re-renders the history timeline and the Markdown iframes while it polls.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { launchBrowser, readFrameTable, scrollTextIntoView, type Browser } from './helpers/browser';

// Every animation frame a fresh bar replaces the old one (same text, same place), far below the fold;
// every 150 ms the details iframe is replaced by a new one with the same table.
const PAGE = `<!doctype html><html><body style="margin:0">
<div style="height:4000px">top</div>
<div id="timeline"></div>
<div id="details"></div>
<script>
  const tl = document.getElementById('timeline');
  const draw = () => { tl.replaceChildren(Object.assign(document.createElement('div'), { textContent: 'kubeadmInit • kubeadm-init · k8scp-01 · kubeadmInit' })); requestAnimationFrame(draw); };
  draw();
  const details = document.getElementById('details');
  const table = '<p>webui: waiting-approval</p><table><thead><tr><th>phase</th><th>state</th></tr></thead><tbody><tr><td>kubeadm init</td><td>done</td></tr></tbody></table>';
  const frame = () => details.replaceChildren(Object.assign(document.createElement('iframe'), { srcdoc: table }));
  frame();
  setInterval(frame, 150);
</script></body></html>`;

describe('in-page helpers of the Web UI test, against a page that keeps re-rendering', () => {
  let b: Browser;
  before(async () => {
    b = await launchBrowser({ artifactsDir: mkdtempSync(join(tmpdir(), 'kha-browser-helpers-')) });
    await b.page.setContent(PAGE);
  });
  after(async () => {
    await b?.close();
  });

  test('finding an element and scrolling it in a second step fails when the page replaces it in between', async () => {
    // What the Web UI test did (and what failed under load): the element is resolved, then scrolled.
    await assert.rejects(b.page.getByText('kubeadmInit • kubeadm-init · k8scp-01 · kubeadmInit').first().scrollIntoViewIfNeeded({ timeout: 10_000 }), /Element is not attached to the DOM/);
  });

  test('scrollTextIntoView finds and scrolls in one step, so a replaced element cannot get in between', async () => {
    assert.equal(await b.page.evaluate(() => (globalThis as unknown as { scrollY: number }).scrollY), 0);
    assert.equal(await scrollTextIntoView(b.page, 'kubeadminit • KUBEADM-INIT · k8scp-01 ·   kubeadmInit'), true);
    assert.ok((await b.page.evaluate(() => (globalThis as unknown as { scrollY: number }).scrollY)) > 3000);
    assert.equal(await scrollTextIntoView(b.page, 'worker-join · k8swn-01'), false);
  });

  test('readFrameTable reads text and rows of one frame in one step while frames come and go', async () => {
    let read = 0;
    for (let i = 0; i < 20; i++) {
      const t = await readFrameTable(b.page, ['phase', 'state']);
      if (!t) continue; // between a removal and its replacement no frame has the table yet
      read++;
      assert.deepEqual(t.rows, [['kubeadm init', 'done']]);
      assert.match(t.text, /^webui: waiting-approval$/m);
    }
    assert.ok(read > 0, 'no read found the table');
    assert.equal(await readFrameTable(b.page, ['no', 'such']), undefined);
  });
});
