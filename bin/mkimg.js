#!/usr/bin/env node
// Entry point of the mkimg command; the code lives in dist/ (npm run build),
// bundled into dist/bundle/ by scripts/bundle.mjs. `mkimg run` has an entry of
// its own (dist/bundle/run.js) that loads no other command: a warm run is
// mostly Node.js's own start-up.
const run = process.argv[2] === 'run';
// Node.js 22.1+ keeps compiled code between runs (a few tens of ms of every start-up); older ones lack it.
import('node:module')
  .then((m) => m.enableCompileCache?.())
  .catch(() => {})
  .then(() => import(run ? '../dist/bundle/run.js' : '../dist/bundle/main.js'))
  .then((m) =>
    run
      ? m.runMain(process.argv.slice(3)).then((code) => {
          process.exitCode = code;
        })
      : m.main(process.argv).then(() => m.exitWhenIdle()),
  )
  .catch((e) => {
    if (e && e.code === 'ERR_MODULE_NOT_FOUND' && /dist\/bundle\/(main|run)\.js/.test(String(e.message))) {
      process.stderr.write('mkimg: not built yet: run `npm run build` in the mkimg checkout\n');
      process.exit(1);
    }
    throw e;
  });
