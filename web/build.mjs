// Builds the browser client into dist/, the only directory the server serves under /static/:
//   src/main.js (+ socket.io-client from node_modules) -> dist/join.js   (one ES module bundle)
//   src/join.css (and the files it @imports)           -> dist/join.css
//   public/*                                           -> dist/* (copied as they are)
// `node build.mjs --watch` rebuilds on change while developing; `--quiet` prints only problems.
import { cp, mkdir, rm } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, "dist");
const watch = process.argv.includes("--watch");

const options = {
  absWorkingDir: here,
  entryPoints: [
    { in: "src/main.js", out: "join" },
    { in: "src/join.css", out: "join" },
  ],
  outdir: dist,
  bundle: true,
  format: "esm",
  // Current desktop and mobile browsers (WebRTC, ES modules, optional chaining, CSS grid).
  target: ["chrome100", "firefox100", "safari15", "edge100"],
  minify: !watch,
  sourcemap: "linked",
  sourcesContent: false,
  legalComments: "linked",
  logLevel: process.argv.includes("--quiet") ? "warning" : "info",
  // The CSP forbids eval and inline code: nothing in the bundle may need either.
  supported: { "dynamic-import": true },
};

await rm(dist, { recursive: true, force: true });
await mkdir(dist, { recursive: true });
await cp(join(here, "public"), dist, { recursive: true });

if (watch) {
  const context = await esbuild.context(options);
  await context.watch();
} else {
  await esbuild.build(options);
}
