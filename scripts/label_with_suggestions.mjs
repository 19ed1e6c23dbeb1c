// Labels as an annotator who takes the model's suggestions (Shift+A, then Enter; an
// item without any is marked "no keyword"), round after round, LABELS items in all,
// then shoots SHOT_PAGE as ENGINEER into SHOT (when given). Used by
// scripts/first_start.sh --two-cycles to let the loop run its second cycle.
import { launch, loggedIn, log } from "../tests/browser/session.mjs";

const { APP_URL, APP_ANNOTATOR, APP_ENGINEER, LABELS = "10", SHOT, SHOT_PAGE } = process.env;
const browser = await launch();
const as = (user) => loggedIn(browser, 30_000, { user, viewport: { width: 1280, height: 900 } });
try {
  const page = await as(APP_ANNOTATOR);
  let labelled = 0;
  let idle = 0;
  while (labelled < Number(LABELS)) {
    if (await page.isVisible("#label-form")) {
      const suggested = await page.isVisible("#suggestions");
      await page.keyboard.press(suggested ? "Shift+A" : "Shift+N");
      await Promise.all([page.waitForNavigation(), page.keyboard.press("Enter")]);
      labelled++;
      continue;
    }
    await page.goto(`${APP_URL}/annotate`);
    const start = page.locator("button[id^=start-]");
    if ((await start.count()) > 0) {
      await Promise.all([page.waitForNavigation(), start.first().click()]);
    } else {
      if (++idle > 120) throw new Error("no round to label for 10 minutes");
      await new Promise((r) => setTimeout(r, 5000)); // the loop is composing the next
    }
  }
  log("labelled", labelled);
  if (SHOT) {
    const engineer = await as(APP_ENGINEER);
    await engineer.goto(`${APP_URL}${SHOT_PAGE || "/engineer/loop"}`);
    await engineer.screenshot({ path: SHOT, fullPage: true });
  }
} finally {
  await browser.close();
}
