// What every browser test starts with: Debian's chromium, flags that keep it off the
// closed network, and a logged-in page.
import { chromium } from "playwright-core";

export const log = (...a) => console.log(new Date().toISOString(), ...a);

export async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
    timeout: 60_000,
  });
}

/// A new page logged in as `user` (APP_USER by default) with APP_PASSWORD, failing
/// loudly on unexpected dialogs; `setup(page)` runs before the login page is opened.
export async function loggedIn(browser, timeout, { user = process.env.APP_USER, viewport, setup } = {}) {
  const { APP_URL, APP_PASSWORD } = process.env;
  const page = await browser.newPage(viewport ? { viewport } : undefined);
  page.setDefaultTimeout(timeout);
  page.on("dialog", (d) => { log("unexpected dialog:", d.message()); d.dismiss(); });
  if (setup) setup(page);
  await page.goto(`${APP_URL}/login`);
  await page.fill("input[name=username]", user);
  await page.fill("input[name=password]", APP_PASSWORD);
  await Promise.all([page.waitForNavigation(), page.press("input[name=password]", "Enter")]);
  return page;
}

/// Photographs the item page open in `page` in Korean and in English, as
/// `annotate-shown-ko.png` and `annotate-shown-en.png` in `dir`.
export async function shootItem(page, dir) {
  const item = new URL(page.url()).pathname;
  await page.setViewportSize({ width: 1100, height: 900 });
  for (const lang of ["ko", "en"]) {
    await page.goto(`${process.env.APP_URL}/lang/${lang}?next=${encodeURIComponent(item)}`);
    await page.screenshot({ path: `${dir}/annotate-shown-${lang}.png`, fullPage: true });
    log("photographed", lang, item);
  }
}

/// Starts round `round` from the annotator's rounds page, as a person does: its start
/// button claims the first item (a POST) and opens it.
export async function startRound(page, round) {
  await page.goto(`${process.env.APP_URL}/annotate`);
  await Promise.all([page.waitForNavigation(), page.click(`#start-${round}`)]);
}
