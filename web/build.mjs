// Builds the browser client into dist/, the only directory the server serves under /static/:
//   src/main.js (+ socket.io-client, yjs from node_modules) -> dist/join.js  (one ES module bundle)
//   src/join.css (and the files it @imports)                -> dist/join.css
//   embed.js (the embed SDK)  -> dist/embed.js   (a classic script: sets window.Triad)
//                             -> dist/embed.mjs  (an ES module: export { mount, Triad })
//   public/*                                                -> dist/* (copied as they are)
// `node build.mjs --watch` rebuilds on change while developing; `--quiet` prints only problems.
import { cp, mkdir, rm } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, "dist");
const watch = process.argv.includes("--watch");

const common = {
  absWorkingDir: here,
  bundle: true,
  // Current desktop and mobile browsers (WebRTC, ES modules, optional chaining, CSS grid).
  target: ["chrome100", "firefox100", "safari15", "edge100"],
  minify: !watch,
  sourcemap: "linked",
  sourcesContent: false,
  legalComments: "linked",
  logLevel: process.argv.includes("--quiet") ? "warning" : "info",
};

const builds = [
  {
    ...common,
    entryPoints: [
      { in: "src/main.js", out: "join" },
      { in: "src/join.css", out: "join" },
    ],
    outdir: dist,
    format: "esm",
    // The CSP forbids eval and inline code: nothing in the bundle may need either.
    supported: { "dynamic-import": true },
  },
  // The SDK runs in the embedding platform's page: one file each, no imports to fetch.
  {
    ...common,
    stdin: {
      contents: 'import { Triad } from "./embed.js";\nglobalThis.Triad = Triad;\n',
      resolveDir: here,
      sourcefile: "embed-global.js",
    },
    outfile: join(dist, "embed.js"),
    format: "iife",
  },
  { ...common, entryPoints: ["embed.js"], outfile: join(dist, "embed.mjs"), format: "esm" },
];

await rm(dist, { recursive: true, force: true });
await mkdir(dist, { recursive: true });
await cp(join(here, "public"), dist, { recursive: true });

if (watch) {
  for (const options of builds) await (await esbuild.context(options)).watch();
} else {
  await Promise.all(builds.map((options) => esbuild.build(options)));
}
