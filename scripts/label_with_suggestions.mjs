// Labels as an annotator who takes the model's suggestions (Shift+A, then Enter; an
// item without any is marked "no keyword"), round after round, LABELS items in all,
// then shoots SHOT_PAGE as ENGINEER into SHOT (when given). Used by
// scripts/first_start.sh --two-cycles to let the loop run its second cycle.
import { launch, log } from "../tests/browser/session.mjs";

const { APP_URL, APP_PASSWORD, APP_ANNOTATOR, APP_ENGINEER, LABELS = "10", SHOT, SHOT_PAGE } = process.env;
const browser = await launch();
async function as(user) {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.setDefaultTimeout(30_000);
  await page.goto(`${APP_URL}/login`);
  await page.fill("input[name=username]", user);
  await page.fill("input[name=password]", APP_PASSWORD);
  await Promise.all([page.waitForNavigation(), page.press("input[name=password]", "Enter")]);
  return page;
}
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
