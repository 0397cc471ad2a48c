// Drives Converse.js in headless Debian Chromium (playwright-core): log in, open a chat with PEER, send BODY
// through the UI, wait until REPLY shows in the chat, take a screenshot. Prints "OK" and exits 0.
// Usage: node converse_driver.mjs PAGE_URL PEER BODY REPLY SCREENSHOT USER_DATA_DIR
import { chromium } from 'playwright-core';

const [pageUrl, peer, body, reply, screenshot, userDataDir] = process.argv.slice(2);
const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]']);
const log = (...args) => console.log(...args);

const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-quic', '--disable-sync',
  ],
  viewport: { width: 1200, height: 800 },
});
let ok = false;
try {
  // Nothing leaves the machine: any request to another host is refused.
  await context.route('**/*', (route) => {
    const host = new URL(route.request().url()).hostname;
    return LOOPBACK.has(host) || LOOPBACK.has(`[${host}]`) ? route.continue() : route.abort();
  });
  const page = context.pages()[0] ?? (await context.newPage());
  page.on('console', (msg) => {
    const text = msg.text();
    if (msg.type() === 'error' || /error|fail/i.test(text)) log(`console.${msg.type()}: ${text.slice(0, 300)}`);
  });
  page.on('requestfailed', (req) => log(`request failed: ${req.url()} ${req.failure()?.errorText}`));
  await page.goto(pageUrl);
  // Logged in: the session is up (bound, roster and disco answered: Converse stalls before this otherwise).
  await page.waitForFunction(() => window.jaybirdApi?.connection?.connected?.(), null, { timeout: 30000 });
  log(`logged in as ${await page.evaluate(() => window.jaybirdApi.user.jid())}`);
  await page.evaluate((jid) => window.jaybirdApi.chats.open(jid, {}, true), peer);
  const textarea = page.locator('converse-chats textarea.chat-textarea');
  await textarea.first().waitFor({ timeout: 20000 });
  await textarea.first().fill(body);
  await textarea.first().press('Enter');
  log('sent');
  await page.locator('converse-chats .chat-msg__text', { hasText: reply }).first().waitFor({ timeout: 20000 });
  log('reply shown');
  await page.screenshot({ path: screenshot, fullPage: true });
  ok = true;
} catch (err) {
  log(`FAIL ${err?.message ?? err}`);
  const page = context.pages()[0];
  if (page) await page.screenshot({ path: screenshot, fullPage: true }).catch(() => {});
} finally {
  await context.close();
}
if (ok) log('OK');
process.exit(ok ? 0 : 1);
