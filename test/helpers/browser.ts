// Debian's chromium, headless, driven by playwright-core, with a fresh profile. Every request the page makes
// goes through a route that lets only loopback and lab (198.18.0.0/15) addresses through and records the rest,
// so a test can assert that the Web UI contacted nothing else.
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Frame, type Page } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';
/** What a page load or a click may take before a browser test fails. */
export const UI_TIMEOUT_MS = 120_000;

export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-quic',
];

/** True for addresses a test may contact: loopback and the lab's 198.18.0.0/15. */
export function allowedHost(hostname: string): boolean {
  const h = hostname.replace(/^\[|\]$/g, '');
  if (h === 'localhost' || h === '::1') return true;
  const m = /^(\d+)\.(\d+)\.\d+\.\d+$/.exec(h);
  if (!m) return false;
  const [a, b] = [Number(m[1]), Number(m[2])];
  return a === 127 || (a === 198 && (b === 18 || b === 19));
}

export interface Browser {
  context: BrowserContext;
  page: Page;
  /** URLs the page asked for that were not allowed (and were aborted). */
  blocked: string[];
  /** Answers with status 400 or more: "status method url: body start". */
  httpErrors: string[];
  /** Saves a full-page screenshot as <artifacts>/<name>.png and returns its path. */
  screenshot(name: string): Promise<string>;
  close(): Promise<void>;
}

export async function launchBrowser(o: { artifactsDir: string; width?: number; height?: number }): Promise<Browser> {
  mkdirSync(o.artifactsDir, { recursive: true });
  const profile = mkdtempSync(join(tmpdir(), 'kha-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: o.width ?? 1440, height: o.height ?? 900 },
    timezoneId: 'UTC',
  });
  const blocked: string[] = [];
  await context.route('**/*', async (route) => {
    const url = route.request().url();
    let ok = false;
    try {
      const u = new URL(url);
      ok = u.protocol === 'data:' || u.protocol === 'blob:' || allowedHost(u.hostname);
    } catch {
      ok = false;
    }
    if (ok) await route.continue();
    else {
      blocked.push(url);
      await route.abort('blockedbyclient');
    }
  });
  const httpErrors: string[] = [];
  context.on('response', (r) => {
    if (r.status() < 400) return;
    void r
      .text()
      .catch(() => '')
      .then((body) => httpErrors.push(`${r.status()} ${r.request().method()} ${r.url()}: ${body.slice(0, 300)}`));
  });
  const page = context.pages()[0] ?? (await context.newPage());
  // Playwright's 30 s default for navigations and clicks is shorter than the Web UI's first load on this
  // 2-core machine under a full test run (a scheduled-check test failed in page.goto that way).
  context.setDefaultTimeout(UI_TIMEOUT_MS);
  context.setDefaultNavigationTimeout(UI_TIMEOUT_MS);
  return {
    context,
    page,
    blocked,
    httpErrors,
    async screenshot(name) {
      const file = join(o.artifactsDir, `${name}.png`);
      await page.screenshot({ path: file, fullPage: true });
      return file;
    },
    async close() {
      await context.close().catch(() => undefined);
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** The few DOM members the in-page helpers use (this project has no DOM types). */
type El = { textContent: string | null; children: ArrayLike<El>; scrollIntoView(o: { block: string; inline: string }): void };

/**
 * Scrolls the innermost element whose text contains `text` (whitespace collapsed, any case, as getByText
 * matches) into view. Finding and scrolling happen in one synchronous step inside the page: the Web UI
 * re-renders a running workflow's history as it polls, so an element found first and scrolled in a second
 * round trip (locator.scrollIntoViewIfNeeded) can be replaced in between ("Element is not attached to the
 * DOM"). False when no element has the text.
 */
export function scrollTextIntoView(page: Page | Frame, text: string): Promise<boolean> {
  return page.evaluate((t) => {
    const norm = (s: string | null) => (s ?? '').replace(/\s+/g, ' ').toLowerCase();
    const want = norm(t).trim();
    const body = (globalThis as unknown as { document: { body: El } }).document.body;
    if (!norm(body.textContent).includes(want)) return false;
    let el = body;
    for (;;) {
      const inner = Array.from(el.children).find((c) => norm(c.textContent).includes(want));
      if (!inner) break;
      el = inner;
    }
    el.scrollIntoView({ block: 'center', inline: 'center' });
    return true;
  }, text);
}

/** A table as one frame shows it: the body's text and the rows' cell texts, read in one step. */
export interface FrameTable {
  text: string;
  rows: string[][];
}

/**
 * The first frame's Markdown table with this header, read in one evaluation per frame: the Web UI
 * replaces its Markdown iframes when it refreshes, so a frame found in one call may be gone by the next.
 */
export async function readFrameTable(page: Page, header: string[]): Promise<FrameTable | undefined> {
  for (const f of page.frames()) {
    const t = await f
      .evaluate((want) => {
        type Cell = { textContent: string | null };
        type Doc = { body: { innerText: string }; querySelectorAll(s: string): ArrayLike<Cell & { cells: ArrayLike<Cell> }> };
        const doc = (globalThis as unknown as { document: Doc }).document;
        const heads = Array.from(doc.querySelectorAll('table th')).map((h) => (h.textContent ?? '').trim());
        if (heads.join('|') !== want) return undefined;
        const rows = Array.from(doc.querySelectorAll('table tbody tr')).map((r) => Array.from(r.cells).map((c) => (c.textContent ?? '').trim()));
        return { text: doc.body.innerText, rows };
      }, header.join('|'))
      .catch(() => undefined);
    if (t) return t;
  }
  return undefined;
}
