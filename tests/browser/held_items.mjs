// Opens the daemon's live page in Debian's chromium and reads the list of items held for
// review (三审). Prints one JSON line; exits non-zero on failure.
//
//   node held_items.mjs BASE_URL
import { chromium } from "playwright-core";

const [base] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu"],
});
let result = { ok: false };
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(`${base}/`);
  await page.waitForSelector("body[data-ready='1']", { timeout: 20000 });
  await page.waitForSelector("#held:not([hidden]) li", { state: "attached", timeout: 20000 });
  await page.locator("#held summary").click();
  result = {
    ok: errors.length === 0,
    errors,
    summary: await page.locator("#held summary").textContent(),
    items: await page.locator("#held li").evaluateAll((lis) =>
      lis.map((li) => ({ item: li.dataset.item, text: li.textContent }))),
    visible: await page.locator("#held li").first().isVisible(),
  };
} catch (e) {
  result = { ok: false, error: String(e) };
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
process.exit(result.ok ? 0 : 1);
