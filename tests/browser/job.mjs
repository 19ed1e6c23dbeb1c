// Follows a running job's page in Debian's chromium: progress and log arrive without a
// reload, and when the job ends the page shows what it did (never raw JSON) and no
// cancel button. Started by tests/api/browser.rs, which moves the job along in the
// database meanwhile.
import { launch, loggedIn, log } from "./session.mjs";

const { APP_URL, APP_JOB } = process.env;

const browser = await launch();
try {
  const page = await loggedIn(browser, 30_000);

  await page.goto(`${APP_URL}/engineer/jobs/${APP_JOB}`);
  await page.waitForFunction(() => document.querySelector("#job-steps").textContent === "5 / 10");
  log("progress shown:", await page.textContent("#job-steps"), "eta", await page.textContent("#job-eta"));
  if ((await page.textContent("#job-eta")) !== "12 s") throw new Error("no ETA");
  if ((await page.textContent("#job-stage")) !== "키워드") throw new Error("the stage is not in Korean");
  if (!(await page.isVisible("#cancel-job"))) throw new Error("a running job can be cancelled");
  await page.waitForFunction(() => document.querySelector("#job-log").textContent.includes("keyword: epoch 3"));
  // The test marks the job done a few seconds after the page opened: the page reloads.
  await page.waitForFunction(() => document.querySelector("#job-status").textContent === "완료", null, { timeout: 30_000 });
  const result = await page.textContent("#job-result");
  log("ended:", await page.textContent("#job-status"), "|", result.replace(/\s+/g, " ").trim());
  if (!result.includes("browser-v1")) throw new Error("the version made is not shown");
  if (result.includes("{")) throw new Error("raw JSON on the page");
  if (await page.isVisible("#cancel-job")) throw new Error("a finished job still offers to cancel");
  if (!(await page.textContent("#job-log")).includes("keyword: epoch 3")) throw new Error("the log is gone");
} finally {
  await browser.close();
}
