// Follows a running job's page in Debian's chromium: progress and log arrive without a
// reload, and the page notices when the job ends. Started by tests/api/browser.rs,
// which moves the job along in the database meanwhile.
import { chromium } from "playwright-core";

const { APP_URL, APP_USER, APP_PASSWORD, APP_JOB } = process.env;
const log = (...a) => console.log(new Date().toISOString(), ...a);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
  timeout: 60_000,
});
try {
  const page = await browser.newPage();
  page.setDefaultTimeout(30_000);
  await page.goto(`${APP_URL}/login`);
  await page.fill("input[name=username]", APP_USER);
  await page.fill("input[name=password]", APP_PASSWORD);
  await Promise.all([page.waitForNavigation(), page.press("input[name=password]", "Enter")]);

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
