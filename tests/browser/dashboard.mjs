// The dashboard in a real browser (Debian's chromium through playwright-core), driven by
// tests/it/browser.rs, which starts Docobo and the fake Discord and passes:
//   node dashboard.mjs <base URL> <login link path> <screenshot folder> <member id to comp>
// Prints one JSON line with what it saw; the Rust test asserts on it. Exits non-zero on any
// failure, with the reason on stderr. Where the test must act outside the browser (deliver a
// purchase), this prints `STEP <name>` and waits for a line on stdin.
import { chromium } from "playwright-core";
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";

const lines = createInterface({ input: process.stdin });
const input = lines[Symbol.asyncIterator]();
/** Asks the Rust test to do `name`; resolves with its answer line. */
async function step(name) {
  console.log(`STEP ${name}`);
  const { value, done } = await input.next();
  if (done) throw new Error(`the test closed stdin at step ${name}`);
  return value;
}

const [base, linkPath, shots, compMember] = process.argv.slice(2);
if (!base || !linkPath || !shots || !compMember) {
  console.error("usage: node dashboard.mjs <base URL> <login link path> <screenshot folder> <member id>");
  process.exit(2);
}
mkdirSync(shots, { recursive: true });

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_BIN || "/usr/bin/chromium",
  headless: true,
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
  ],
});
const seen = { consoleErrors: [] };
try {
  // A phone-sized viewport: the pages must work there.
  const context = await browser.newContext({ viewport: { width: 390, height: 844 } });
  const page = await context.newPage();
  page.on("console", (m) => {
    if (m.type() === "error") seen.consoleErrors.push(m.text());
  });
  page.on("pageerror", (e) => seen.consoleErrors.push(String(e)));

  await page.goto(base + linkPath);
  await page.screenshot({ path: join(shots, "login-link.png"), fullPage: true });
  seen.continueVisible = await page.getByRole("button", { name: "Continue" }).isVisible();
  // Keyboard only: the Continue button is reachable with Tab and works with Enter.
  await page.keyboard.press("Tab");
  seen.focused = await page.evaluate(() => document.activeElement?.textContent?.trim());
  await Promise.all([page.waitForURL("**/dashboard/guilds/**"), page.keyboard.press("Enter")]);
  seen.overviewUrl = new URL(page.url()).pathname;
  seen.heading = await page.locator("h1").innerText();
  seen.overviewText = await page.locator("main").innerText();
  seen.htmxLoaded = await page.evaluate(() => typeof window.htmx === "object");
  seen.stylesApplied = await page.evaluate(
    () => getComputedStyle(document.querySelector("table") ?? document.body).borderCollapse,
  );
  seen.horizontalOverflow = await page.evaluate(
    () => document.documentElement.scrollWidth > window.innerWidth,
  );
  await page.screenshot({ path: join(shots, "overview.png"), fullPage: true });

  // Live: once the page's event stream is open, a purchase elsewhere shows up without a
  // reload (the page's navigations are counted).
  await page.waitForFunction(
    () => document.querySelector("[data-live-state]")?.textContent === "on",
    null,
    { timeout: 15000 },
  );
  let navigations = 0;
  page.on("framenavigated", (frame) => {
    if (frame === page.mainFrame()) navigations += 1;
  });
  seen.countBefore = await page.locator("#active-count").innerText();
  await step("purchase");
  await page.waitForFunction(
    (before) => document.querySelector("#active-count")?.textContent !== before,
    seen.countBefore,
    { timeout: 15000 },
  );
  seen.countAfter = await page.locator("#active-count").innerText();
  seen.liveNavigations = navigations;
  seen.chartBars = await page.locator("figure.chart rect").count();
  await page.screenshot({ path: join(shots, "overview-live.png"), fullPage: true });

  const guildPath = seen.overviewUrl;
  await page.goto(base + guildPath + "/members");
  seen.membersRows = await page.locator("tbody tr").count();
  await page.screenshot({ path: join(shots, "members.png"), fullPage: true });

  // Comp a member from their page: the grant form, by label, as an owner fills it.
  const memberPath = `${guildPath}/members/${compMember}`;
  await page.goto(base + memberPath);
  await page.getByLabel("Days").first().fill("30");
  await Promise.all([
    page.waitForURL(`**${memberPath}`),
    page.getByRole("button", { name: "Grant" }).click(),
  ]);
  seen.grantNotice = await page.locator(".notice").innerText();
  await page.screenshot({ path: join(shots, "member.png"), fullPage: true });
  seen.compAnswer = await step("comp");

  // Export (a download), forget the member, then import the file back.
  await page.goto(base + guildPath + "/import");
  await page.screenshot({ path: join(shots, "import.png"), fullPage: true });
  const [download] = await Promise.all([
    page.waitForEvent("download"),
    page.getByRole("link", { name: "Download the export" }).click(),
  ]);
  const exportFile = join(shots, "export.jsonl");
  await download.saveAs(exportFile);
  seen.exportName = download.suggestedFilename();
  seen.exportHasMember = readFileSync(exportFile, "utf8").includes(compMember);

  await page.goto(base + memberPath + "/forget");
  await page.screenshot({ path: join(shots, "member-forget.png"), fullPage: true });
  await Promise.all([
    page.waitForURL(`**${memberPath}`),
    page.getByRole("button", { name: "Yes, delete their personal data" }).click(),
  ]);
  seen.forgetNotice = await page.locator(".notice").innerText();
  seen.forgetAnswer = await step("forgotten");

  await page.goto(base + guildPath + "/import");
  await page.locator("#import-file").setInputFiles(exportFile);
  await page.getByRole("button", { name: "Import the file" }).click();
  await page.locator(".notice").waitFor({ timeout: 15000 });
  seen.importNotice = await page.locator(".notice").innerText();
  await page.screenshot({ path: join(shots, "import-done.png"), fullPage: true });
  seen.importAnswer = await step("imported");
  seen.horizontalOverflowAfter = await page.evaluate(
    () => document.documentElement.scrollWidth > window.innerWidth,
  );

  await Promise.all([
    page.waitForURL("**/dashboard/login"),
    page.getByRole("button", { name: "Log out" }).click(),
  ]);
  seen.afterLogout = new URL(page.url()).pathname;
  // The session is gone: the overview sends back to the login page.
  await page.goto(base + seen.overviewUrl);
  seen.afterLogoutRevisit = new URL(page.url()).pathname;
  await page.screenshot({ path: join(shots, "login.png"), fullPage: true });
  console.log(JSON.stringify(seen));
} catch (e) {
  console.error(`browser test failed: ${e?.stack ?? e}`);
  process.exitCode = 1;
} finally {
  await browser.close();
  // Stdin stays open (the test writes step answers to it): stop reading so node exits.
  lines.close();
  process.stdin.destroy();
}
