#!/usr/bin/env node
// Entry point of the mkimg command; the code lives in dist/ (npm run build),
// bundled into dist/bundle/ by scripts/bundle.mjs.
import('../dist/bundle/main.js').then((m) => m.main(process.argv)).catch((e) => {
  if (e && e.code === 'ERR_MODULE_NOT_FOUND' && String(e.message).includes('dist/bundle/main.js')) {
    process.stderr.write('mkimg: not built yet: run `npm run build` in the mkimg checkout\n');
    process.exit(1);
  }
  throw e;
});
