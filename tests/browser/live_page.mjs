// Opens the daemon's live page in Debian's chromium and checks that a display's current
// picture is there: the card exists, its picture has loaded at the expected size, and the
// page updated it from the event stream. Prints one JSON line; exits non-zero on failure.
//
//   node live_page.mjs BASE_URL DISPLAY_ID WIDTHxHEIGHT SCREENSHOT.png
import { chromium } from "playwright-core";

const [base, display, size, screenshot] = process.argv.slice(2);
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
  const card = page.locator(`#display-${display}`);
  await card.locator(`img[data-loaded='${size}']`).waitFor({ timeout: 20000 });
  result = {
    ok: errors.length === 0,
    errors,
    title: await card.locator("h2").textContent(),
    now: await card.locator(".now").textContent(),
    loaded: await card.locator("img").getAttribute("data-loaded"),
    site: await page.locator("#site").textContent(),
  };
  await page.screenshot({ path: screenshot, fullPage: true });
} catch (e) {
  result = { ok: false, error: String(e) };
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
process.exit(result.ok ? 0 : 1);
