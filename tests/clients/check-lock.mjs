// Refuses a lock that could fetch anything but the pinned registry packages: run by
// scripts/check before `npm ci --ignore-scripts`. Every dependency in package.json is an exact
// version; every package in package-lock.json comes from registry.npmjs.org (npm leaves
// `resolved` out for its default registry) with a sha512 integrity, so the clients' platform
// binaries (optional dependencies) are the registry's and nothing is downloaded from elsewhere.
import { readFileSync } from "node:fs";

const manifest = JSON.parse(readFileSync(new URL("package.json", import.meta.url)));
const lock = JSON.parse(readFileSync(new URL("package-lock.json", import.meta.url)));
const problems = [];
for (const [name, version] of Object.entries(manifest.dependencies ?? {})) {
  if (!/^\d+\.\d+\.\d+$/.test(version)) problems.push(`package.json: ${name} is "${version}", not an exact version`);
}
for (const [path, entry] of Object.entries(lock.packages ?? {})) {
  if (path === "") continue;
  if (entry.link) problems.push(`${path}: a link, not a registry package`);
  if (entry.resolved && !entry.resolved.startsWith("https://registry.npmjs.org/")) {
    problems.push(`${path}: resolved from ${entry.resolved}`);
  }
  if (!entry.integrity?.startsWith("sha512-")) problems.push(`${path}: no sha512 integrity`);
}
if (problems.length) {
  console.error(`tests/clients/package-lock.json is not all pinned registry packages:\n${problems.join("\n")}`);
  process.exit(1);
}
console.log(`tests/clients: ${Object.keys(lock.packages).length - 1} locked registry packages`);
