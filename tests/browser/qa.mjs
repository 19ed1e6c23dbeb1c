// A QA reviewer in Debian's chromium: opens the audit table, drills into 배송, applies
// the model's suggestion to the first suspect and dismisses the other. Started by
// tests/api/browser.rs, which prepares the suspects and checks the database.
import { launch, loggedIn, log } from "./session.mjs";

const { APP_URL } = process.env;

const browser = await launch();
try {
  const page = await loggedIn(browser, 20_000);
  await page.goto(`${APP_URL}/qa/audit?taxonomy=fashion`);
  await Promise.all([page.waitForNavigation(), page.click("#audit a:text-is('배송')")]);
  log("drilled into", page.url());
  const rows = page.locator("#suspects tbody tr");
  if ((await rows.count()) !== 2) throw new Error(`expected 2 suspects, saw ${await rows.count()}`);
  await Promise.all([page.waitForNavigation(), rows.nth(0).locator("button").click()]);
  log("fixed the first; left:", await rows.count());
  await rows.nth(0).locator("input[type=checkbox]").check();
  await Promise.all([page.waitForNavigation(), page.click("button[name=decision][value=dismiss]")]);
  const left = await page.locator("#suspects tbody tr").count();
  log("after dismissing:", left, "open");
  if (left !== 0) throw new Error("suspects left open");
} finally {
  await browser.close();
}
