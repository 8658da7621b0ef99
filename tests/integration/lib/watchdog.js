'use strict';
// Two guards for a test file, so that a hang fails it with a reason instead of the runner's
// silent file timeout (which loses the file's output):
// - once every test has ended, if the process is still alive GRACE_MS later (a child that
//   ignored SIGTERM, a socket nobody closed), name what keeps it alive and exit 1;
// - if the file as a whole runs longer than FILE_MS (kept below the runner's
//   --test-timeout of 180 s), name the test under way and what is active, and exit 1.
// Both timers are unref'd: they never keep a finished process alive.

const { after, beforeEach } = require('node:test');

const GRACE_MS = 20_000;
const FILE_MS = Number(process.env.TGATE_TEST_FILE_MS || 170_000);

let current = '(before the first test)';
beforeEach((t) => {
  current = t.name;
});

function active() {
  return process.getActiveResourcesInfo().filter((r) => r !== 'Timeout').join(', ');
}

const whole = setTimeout(() => {
  process.stderr.write(`watchdog: the test file still runs after ${FILE_MS} ms; test under way: ` +
    `"${current}"; active: ${active()}\n`);
  process.exit(1);
}, FILE_MS);
whole.unref();

after(() => {
  const t = setTimeout(() => {
    process.stderr.write(`watchdog: tests ended ${GRACE_MS} ms ago but the process is still alive; active: ${active()}\n`);
    process.exit(1);
  }, GRACE_MS);
  t.unref();
});
