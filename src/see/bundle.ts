/**
 * The page's code and style for `isolab see`: web/src/main.tsx bundled by esbuild into one
 * minified script (an IIFE that needs nothing at run time) and web/src/see.css into one style
 * sheet, both as strings for html.ts to inline. Run as a script (`node dist/src/see/bundle.js`,
 * as `npm run build` does) it writes them to dist/web/see.js and dist/web/see.css.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

/** This module's directory: src/see from the sources, dist/src/see once compiled. */
const HERE = dirname(fileURLToPath(import.meta.url));

/** web/src: the nearest directory above this module holding web/src/main.tsx. */
function webSource(): string {
  for (let dir = HERE; ; dir = dirname(dir)) {
    const src = join(dir, 'web', 'src');
    if (existsSync(join(src, 'main.tsx'))) return src;
    if (dirname(dir) === dir) throw new Error(`web/src/main.tsx not found above ${HERE}`);
  }
}

/** The page's script and style sheet. */
export async function bundleWeb(): Promise<{ js: string; css: string }> {
  const src = webSource();
  const result = await build({
    entryPoints: [join(src, 'main.tsx'), join(src, 'see.css')],
    bundle: true,
    minify: true,
    format: 'iife',
    platform: 'browser',
    target: 'es2020',
    jsx: 'automatic',
    jsxImportSource: 'preact',
    sourcemap: false,
    legalComments: 'none',
    write: false,
    outdir: 'see',
    logLevel: 'silent',
  });
  const output = (ext: string): string => {
    const file = result.outputFiles.find((f) => f.path.endsWith(ext));
    if (!file) throw new Error(`esbuild produced no ${ext} file`);
    return file.text;
  };
  return { js: output('.js'), css: output('.css') };
}

/** Writes the bundle to dist/web/see.js and dist/web/see.css (dist: two directories above this module). */
async function writeBundle(): Promise<void> {
  const out = resolve(HERE, '..', '..', 'web');
  const { js, css } = await bundleWeb();
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'see.js'), js);
  writeFileSync(join(out, 'see.css'), css);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  writeBundle().catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exitCode = 1;
  });
}
