// Drives the annotation page with the keyboard only, in Debian's chromium.
// Started by tests/api/browser.rs, which prepares the data and checks the database.
import { launch, loggedIn, log, startRound } from "./session.mjs";

const { APP_URL, APP_ROUND } = process.env;

const browser = await launch();
try {
  const page = await loggedIn(browser, 20_000);

  await startRound(page, APP_ROUND);
  const keys = async (...list) => { for (const k of list) await page.keyboard.press(k); };
  const navigate = async (...list) => {
    const before = await page.textContent("#review-text").catch(() => "");
    const url = page.url();
    await Promise.all([page.waitForNavigation(), keys(...list)]);
    log("moved", url, "->", page.url(), "| was:", before);
  };

  // 1st review: 디자인 (key 3) +1, 배송 (key 1) −1.
  await keys("3", "ArrowRight", "1", "-");
  await navigate("Enter");
  // 2nd review: 만족도 (key w) +2.
  await keys("w", "ArrowRight", "ArrowRight");
  await navigate("Enter");
  // 3rd review: go back to the 2nd first.
  await navigate("Shift+B");
  const correcting = await page.isVisible("#correcting");
  if (!correcting) throw new Error("back did not open the previous answer");
  // Keep 만족도 +2, add 사이즈 (key 6) −1.
  await keys("6", "-");
  await navigate("Enter");
  // Back on the 3rd review: no keyword.
  await keys("Shift+N");
  await navigate("Enter");
  if (!page.url().includes("finished=")) throw new Error(`expected the round to be finished, at ${page.url()}`);
  log("done");
} finally {
  await browser.close();
}
