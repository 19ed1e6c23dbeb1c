// Photographs an item of round APP_ROUND in Korean and English into APP_SHOTS, for
// the docs (scripts/screenshots.sh): the first item with at least two suggested
// keywords (others are skipped), so the picture shows a colour per keyword. The
// browser test takes the same pictures of its tiny model.
import { launch, loggedIn, log, shootItem, startRound } from "./session.mjs";

const { APP_URL, APP_ROUND, APP_SHOTS } = process.env;
const browser = await launch();
try {
  const page = await loggedIn(browser, 20_000);
  await startRound(page, APP_ROUND);
  for (let tries = 0; tries < 30; tries++) {
    await page.waitForSelector("#suggestions");
    if (await page.locator(".suggestion").count() >= 2) break;
    log("skipping an item with one suggestion");
    await Promise.all([page.waitForNavigation(), page.keyboard.press("Shift+S")]);
  }
  await shootItem(page, APP_SHOTS);
} finally {
  await browser.close();
}
