'use strict';
// A test file whose tests have all ended but whose process stays alive (a child
// that ignored SIGTERM, a socket nobody closed) would otherwise sit until the
// runner's file timeout and lose its output. Required by a test file, this
// registers a last `after` hook that arms an unref'd timer: if the process is
// still alive `ms` later, it names what keeps it alive and exits non-zero.

const { after } = require('node:test');

const GRACE_MS = 20_000;

after(() => {
  const t = setTimeout(() => {
    const what = process.getActiveResourcesInfo().filter((r) => r !== 'Timeout');
    process.stderr.write(`watchdog: tests ended ${GRACE_MS} ms ago but the process is still alive; active: ${what.join(', ')}\n`);
    process.exit(1);
  }, GRACE_MS);
  t.unref();
});
