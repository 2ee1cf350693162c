// The dashboard's operations pages in a real browser (Debian's chromium through
// playwright-core), driven by tests/it/dashboard_ops.rs, which starts Docobo and the fake
// Discord, opens an owner's and the operator's sessions, and passes:
//   node ops.mjs <base URL> <guild id> <owner cookie value> <operator cookie value> <screenshot folder>
// On a phone-sized screen it visits every operations page (a screenshot of each), retries a
// failed role sync by keyboard alone and takes a backup. Prints one JSON line with what it
// saw; the Rust test asserts on it. Exits non-zero on any failure, with the reason on stderr.
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

const [base, guild, ownerCookie, operatorCookie, shots] = process.argv.slice(2);
if (!base || !guild || !ownerCookie || !operatorCookie || !shots) {
  console.error("usage: node ops.mjs <base URL> <guild id> <owner cookie> <operator cookie> <screenshot folder>");
  process.exit(2);
}
mkdirSync(shots, { recursive: true });
const host = new URL(base).hostname;

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
const seen = { consoleErrors: [], pages: {} };

/// A phone-sized page logged in with `cookie`.
async function phone(cookie) {
  const context = await browser.newContext({ viewport: { width: 390, height: 844 } });
  await context.addCookies([
    { name: "docobo_session", value: cookie, domain: host, path: "/dashboard", httpOnly: true, sameSite: "Strict" },
  ]);
  const page = await context.newPage();
  page.on("console", (m) => {
    if (m.type() === "error") seen.consoleErrors.push(m.text());
  });
  page.on("pageerror", (e) => seen.consoleErrors.push(String(e)));
  return page;
}

/// What a page shows, and its screenshot as `<name>.png`.
async function visit(page, path, name) {
  const response = await page.goto(base + path);
  await look(page, name, response.status());
}

async function look(page, name, status) {
  seen.pages[name] = {
    status,
    heading: await page.locator("h1").innerText(),
    text: await page.locator("main").innerText(),
    horizontalOverflow: await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth),
  };
  await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
}

try {
  const owner = await phone(ownerCookie);
  await visit(owner, `/dashboard/guilds/${guild}/syncs`, "syncs");
  // Keyboard only: Tab to the row's Retry button, Enter retries it.
  let focused = "";
  for (let i = 0; i < 40 && focused !== "Retry"; i++) {
    await owner.keyboard.press("Tab");
    focused = await owner.evaluate(() => document.activeElement?.textContent?.trim() ?? "");
  }
  seen.retryFocused = focused;
  await Promise.all([owner.waitForURL("**/syncs?**"), owner.keyboard.press("Enter")]);
  await look(owner, "syncs-retried", 200);
  await visit(owner, `/dashboard/guilds/${guild}/deliveries`, "deliveries");
  await visit(owner, `/dashboard/guilds/${guild}/plugins`, "plugins");
  await visit(owner, "/dashboard/health", "health");
  // The operator's page, refused: the browser logs the 403 it was meant to get.
  const logged = seen.consoleErrors.length;
  await visit(owner, "/dashboard/backups", "backups-refused");
  seen.consoleErrors = seen.consoleErrors.filter((e, i) => i < logged || !e.includes("status of 403"));

  const operator = await phone(operatorCookie);
  await visit(operator, "/dashboard/backups", "backups");
  await Promise.all([
    operator.waitForURL("**/backups?taken=**"),
    operator.getByRole("button", { name: "Take a backup now" }).click(),
  ]);
  await look(operator, "backups-taken", 200);
  await visit(operator, "/dashboard/health", "health-operator");
  console.log(JSON.stringify(seen));
} catch (e) {
  console.error(`browser test failed: ${e?.stack ?? e}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
