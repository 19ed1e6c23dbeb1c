// Model suggestions on the annotation page, in Debian's chromium: a prefilled round
// (one item accepted with one key, another corrected), an unassisted round, and a
// shown round photographed in Korean and English. Started by tests/api/browser.rs,
// which composes the rounds and checks the database.
import { launch, loggedIn, log, shootItem, startRound } from "./session.mjs";

const { APP_URL, APP_PREFILLED, APP_OFF, APP_SHOWN, APP_SHOTS } = process.env;

const check = (ok, what) => { if (!ok) throw new Error(what); };

/// The keyword rows as the page shows them, in page order.
const rowsOf = (page) => page.$$eval(".keyword", (rows) => rows.map((r) => ({
  key: r.dataset.key,
  name: r.querySelector(".name").textContent,
  suggested: r.dataset.suggestedLevel,
  checked: r.querySelector("input[type=checkbox]").checked,
  level: r.querySelector("select").value,
  accepted: r.classList.contains("accepted"),
  manual: r.classList.contains("manual"),
})));

const browser = await launch();
try {
  const page = await loggedIn(browser, 20_000);
  const keys = async (...list) => { for (const k of list) await page.keyboard.press(k); };
  const submit = () => Promise.all([page.waitForNavigation(), keys("Enter")]);

  // Prefilled, 1st item: the suggestions arrive ticked; untick one, then Shift+A
  // takes them all back, and Enter submits them as they are.
  await startRound(page, APP_PREFILLED);
  check(await page.getAttribute("#suggestions", "data-mode") === "prefilled", "suggestions in prefilled mode");
  check(await page.locator("#review-text mark").count() > 0, "the words that drove a keyword are marked");
  let rows = await rowsOf(page);
  const first = rows.filter((r) => r.suggested !== undefined);
  check(first.length >= 2, `at least two suggestions: ${JSON.stringify(rows)}`);
  check(first.every((r) => r.checked && r.accepted && r.level === r.suggested), "ticked in advance, as accepted");
  await keys(first[0].key);
  check((await rowsOf(page))[rows.indexOf(first[0])].manual, "an unticked suggestion is marked as a change by hand");
  await keys("Shift+A");
  rows = await rowsOf(page);
  check(rows.every((r) => r.checked === (r.suggested !== undefined) && !r.manual), "Shift+A accepts all");
  await submit();
  log("accepted", first.map((r) => r.name));

  // 2nd item: change the first suggestion's level, remove the last, add the first
  // keyword not suggested (at the default level).
  rows = await rowsOf(page);
  const suggested = rows.filter((r) => r.suggested !== undefined);
  const [changed, removed] = [suggested[0], suggested[suggested.length - 1]];
  const added = rows.find((r) => r.suggested === undefined);
  const max = await page.$eval(`.keyword[data-key="${changed.key}"] select`, (s) => s.options[s.options.length - 1].value);
  await keys(changed.suggested === max ? "ArrowLeft" : "ArrowRight", removed.key, added.key);
  rows = await rowsOf(page);
  const row = (r) => rows.find((x) => x.name === r.name);
  check(row(changed).manual && row(changed).level !== changed.suggested, "the changed level is marked by hand");
  check(!row(removed).checked && row(removed).manual, "the removed suggestion is marked by hand");
  check(row(added).checked && row(added).manual, "the added keyword is marked by hand");
  check(suggested.slice(1, -1).every((r) => row(r).accepted), "the others stay accepted");
  await submit();
  check(page.url().includes("finished="), `the prefilled round is finished, at ${page.url()}`);
  log("corrected", { changed: changed.name, level: row(changed).level, removed: removed.name, added: added.name });

  // Off: nothing of the model in the page.
  await startRound(page, APP_OFF);
  check(await page.locator("#suggestions, mark, .keyword.suggested").count() === 0, "no suggestion when off");
  check((await rowsOf(page)).every((r) => !r.checked), "nothing ticked when off");

  // Shown: suggestions visible, nothing ticked.
  await startRound(page, APP_SHOWN);
  check(await page.getAttribute("#suggestions", "data-mode") === "shown", "suggestions in shown mode");
  check((await rowsOf(page)).every((r) => !r.checked), "nothing ticked when shown");
  await shootItem(page, APP_SHOTS);
  log("done");
} finally {
  await browser.close();
}
