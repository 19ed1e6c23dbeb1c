// Follows a running job's page in Debian's chromium: progress and log arrive without a
// reload, and the page notices when the job ends. Started by tests/api/browser.rs,
// which moves the job along in the database meanwhile.
import { launch, loggedIn, log } from "./session.mjs";

const { APP_URL, APP_JOB } = process.env;

const browser = await launch();
try {
  const page = await loggedIn(browser, 30_000);

  await page.goto(`${APP_URL}/engineer/jobs/${APP_JOB}`);
  await page.waitForFunction(() => document.querySelector("#job-steps").textContent === "5 / 10");
  log("progress shown:", await page.textContent("#job-steps"), "eta", await page.textContent("#job-eta"));
  if ((await page.textContent("#job-eta")) !== "12 s") throw new Error("no ETA");
  await page.waitForFunction(() => document.querySelector("#job-log").textContent.includes("keyword: epoch 3"));
  // The test marks the job done a few seconds after the page opened.
  await page.waitForFunction(() => document.querySelector("#job-status").textContent === "succeeded");
  await page.waitForFunction(() => document.querySelector("#job-result").textContent.includes("browser-v1"));
  log("ended:", await page.textContent("#job-status"), (await page.textContent("#job-log")).trim());
  if ((await page.textContent("#job-steps")) !== "10 / 10") throw new Error("final progress not shown");
} finally {
  await browser.close();
}
