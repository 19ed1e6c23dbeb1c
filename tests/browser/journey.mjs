// A newcomer's first start, in Debian's chromium, as each role: the engineer watches the
// loop's first cycle end on its timeline and reads its jobs; the annotator starts the
// round the model picked and labels with its suggestions; the reviewer runs the audit
// and gets told so; anyone analyses a review at /try; the engineer composes a round
// with the optional fields left blank. Any page answered with an error fails it.
// Started by tests/api/browser.rs, which serves the demo on a tiny base with a worker.
import { launch, loggedIn, log } from "./session.mjs";

const { APP_URL, APP_ANNOTATOR, APP_ENGINEER, APP_REVIEWER, APP_SHOTS } = process.env;
// How long the first cycle may take (scripts/first_start.sh waits on a real base).
const WAIT_S = Number(process.env.APP_WAIT_S || 300);
// The seed's examples and hard cases (DESIGN.md), each with the keyword it is about.
const EXAMPLES = [
  ["옷은 예쁘지만 배송은 늦어요", "배송"],
  ["사진보다 색이 어두워요", "색상"],
  ["원단이 쫀쫀하고 짱짱해서 오래 입을듯", "품질"],
  ["허리밴드가 쫀쫀하게 잘 늘어나요", "신축성"],
  ["한번 입었는데 구김이 너무 잘가요", "소재"],
  ["바느질이 엉망이고 실밥이 다 튀어나와있음", "마감처리"],
];
const errors = [];
const pages = {};

const browser = await launch();
async function as(user) {
  const page = await loggedIn(browser, 30_000, {
    user,
    setup: (page) => page.on("response", (r) => {
      if (r.request().resourceType() === "document" && r.status() >= 400) errors.push(`${r.status()} ${r.url()}`);
    }),
  });
  log(user, "logged in at", page.url());
  pages[user] = page;
  return page;
}
const shot = async (page, name) => { if (APP_SHOTS) await page.screenshot({ path: `${APP_SHOTS}/${name}.png`, fullPage: true }); };

try {
  // The engineer: the first cycle on the timeline, until its round is made.
  const engineer = await as(APP_ENGINEER);
  await engineer.goto(`${APP_URL}/engineer/loop`);
  const deadline = Date.now() + WAIT_S * 1000;
  while (!(await engineer.textContent("#cycles")).includes("끝")) {
    if (Date.now() > deadline) throw new Error(`the first cycle did not end: ${await engineer.textContent("#cycles")}`);
    await new Promise((r) => setTimeout(r, 2000));
    await engineer.reload();
  }
  const timeline = (await engineer.textContent("#cycles")).replace(/\s+/g, " ");
  log("timeline:", timeline);
  if (!timeline.includes("첫 시작") || !timeline.includes("승격했습니다")) throw new Error(`timeline: ${timeline}`);
  await shot(engineer, "journey-loop");
  // Its round step links to the job that composed the round: a page, not JSON.
  const jobs = engineer.locator("#cycles .steps a");
  await Promise.all([engineer.waitForNavigation(), jobs.last().click()]);
  const result = await engineer.textContent("#job-result");
  if (!result.includes("#") || result.includes("{")) throw new Error(`compose job result: ${result}`);
  if (await engineer.isVisible("#cancel-job")) throw new Error("a finished job offers to cancel");

  // The annotator: the round the model picked, with its suggestions.
  const annotator = await as(APP_ANNOTATOR);
  await annotator.goto(`${APP_URL}/annotate`);
  await Promise.all([annotator.waitForNavigation(), annotator.click("button[id^=start-]")]);
  // Items double-assigned for agreement are shown without suggestions, and a tiny
  // base's model may find nothing in a review: walk until one shows them.
  let assisted = 0;
  for (let i = 0; i < 6; i++) {
    await annotator.waitForSelector("#label-form");
    if (await annotator.isVisible("#suggestions")) {
      if (assisted++ === 0) {
        await shot(annotator, "journey-item");
        log("suggestions:", (await annotator.textContent("#suggestions")).replace(/\s+/g, " "));
      }
      await annotator.keyboard.press("Shift+A"); // takes the model's suggestions
    } else {
      await annotator.keyboard.press("1");
    }
    await Promise.all([annotator.waitForNavigation(), annotator.keyboard.press("Enter")]);
  }
  log("annotator labelled 6 items,", assisted, "with suggestions, now at", annotator.url());
  if (assisted === 0) throw new Error("no item of the model's round showed its suggestions");

  // The reviewer: runs the label-error search and is told it is queued.
  const reviewer = await as(APP_REVIEWER);
  await reviewer.goto(`${APP_URL}/qa/audit?taxonomy=fashion`);
  await Promise.all([reviewer.waitForNavigation(), reviewer.click("#run-audit button")]);
  if (!(await reviewer.isVisible("#audit-queued"))) throw new Error("no word that the audit was queued");
  log("reviewer queued the audit at", reviewer.url());
  await shot(reviewer, "journey-audit");
  await Promise.all([reviewer.waitForNavigation(), reviewer.click("#audit a[href^='/qa/keywords/']")]);
  log("reviewer on", reviewer.url());

  // Anyone: the seed's examples at /try (a tiny base's answers are logged, not judged).
  let sensible = 0;
  for (const [text, keyword] of EXAMPLES) {
    await reviewer.goto(`${APP_URL}/try`);
    await reviewer.fill("textarea[name=text]", text);
    await Promise.all([reviewer.waitForNavigation(), reviewer.click("#try-form button[type=submit]")]);
    if (!(await reviewer.isVisible("#findings, #no-findings"))) throw new Error("no analysis at /try");
    const found = await reviewer.locator("#findings tbody tr").evaluateAll((rows) =>
      rows.map((r) => [...r.querySelectorAll("td")].slice(0, 3).map((td) => td.textContent.trim()).join(" ")));
    if (found.some((f) => f.startsWith(keyword + " "))) sensible++;
    log(`try: ${text} → ${found.join(" | ") || "(nothing)"}`);
  }
  log(`try: ${sensible} of ${EXAMPLES.length} examples found their keyword`);
  await shot(reviewer, "journey-try");

  // The engineer again: a round with every optional field left blank.
  await engineer.goto(`${APP_URL}/engineer/rounds`);
  await engineer.fill("input[name=name]", "빈칸 라운드");
  await engineer.fill("input[name=size]", "5");
  await engineer.fill("input[name=seed]", "");
  await engineer.fill("input[name=quota_random]", "");
  await Promise.all([engineer.waitForNavigation(), engineer.click("form.card button[type=submit]")]);
  const created = await engineer.textContent("#created");
  log("round:", created);
  await engineer.goto(`${APP_URL}/engineer/models`);
  await engineer.goto(`${APP_URL}/engineer/training`);
} catch (e) {
  for (const [user, page] of Object.entries(pages)) { log(user, "was at", page.url()); await shot(page, `failed-${user}`); }
  throw e;
} finally {
  await browser.close();
}
if (errors.length) throw new Error(`error pages:\n${errors.join("\n")}`);
log("done");
