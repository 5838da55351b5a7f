// Opens the kiosk page in Debian's chromium as a portrait touchscreen: waits for the playlist
// to show an item, taps the screen, taps a category, taps an item, reads its text, saves a
// screenshot, then waits for the idle timeout to bring the playlist back. Prints one JSON
// line; exits non-zero on failure.
//
//   node kiosk_page.mjs BASE_URL DISPLAY_ID CATEGORY ITEM_ID SCREENSHOT.png
import { chromium } from "playwright-core";

const [base, display, category, itemId, screenshot] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu"],
});
let result = { ok: false };
try {
  const context = await browser.newContext({
    viewport: { width: 540, height: 960 },
    deviceScaleFactor: 2,
    hasTouch: true,
    locale: "zh-CN",
  });
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  const idle = 5;
  await page.goto(`${base}/kiosk/?display=${encodeURIComponent(display)}&idle=${idle}`);
  await page.waitForSelector("body[data-ready='1']", { timeout: 20000 });
  // The playlist shows its first item.
  await page.waitForFunction(() => document.getElementById("play-title").textContent.length > 0, null, { timeout: 20000 });
  const playing = await page.locator("#play-title").textContent();
  await page.locator("#play-main").tap();
  await page.waitForSelector("#browse.on", { timeout: 10000 });
  const categoryCount = await page.locator("#categories .category").count();
  await page.locator(`.category[data-name="${category}"]`).tap();
  const item = page.locator(`.item[data-id="${itemId}"]`);
  await item.waitFor({ timeout: 10000 });
  await item.tap();
  await page.waitForSelector("#item.on", { timeout: 10000 });
  await page.waitForFunction(() => document.getElementById("item-body").textContent.length > 0, null, { timeout: 10000 });
  const title = await page.locator("#item-title").textContent();
  const body = await page.locator("#item-body").textContent();
  // The shipped font has loaded, so the screenshot shows hanzi on any machine.
  await page.evaluate(() => document.fonts.ready);
  const fontLoaded = await page.evaluate(() => document.fonts.check('40px "GongkaiSC"', "国"));
  await page.screenshot({ path: screenshot });
  // Untouched for `idle` seconds: back to the playlist.
  await page.waitForSelector("body[data-view='play']", { timeout: (idle + 10) * 1000 });
  result = {
    ok: errors.length === 0,
    errors,
    playing,
    category_count: categoryCount,
    title,
    body,
    font_loaded: fontLoaded,
    back_to_playlist: true,
  };
} catch (e) {
  result = { ok: false, error: String(e) };
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
process.exit(result.ok ? 0 : 1);
