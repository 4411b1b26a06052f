'use strict';
// Adds up jest --json reports into the one closing line CI reads: "N passed, N failed".
const fs = require('node:fs');

let passed = 0;
let failed = 0;
let skipped = 0;
const args = process.argv.slice(2);
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--extra-passed') passed += Number(args[++i]);
  else if (args[i] === '--extra-failed') failed += Number(args[++i]);
  else if (fs.existsSync(args[i])) {
    const report = JSON.parse(fs.readFileSync(args[i], 'utf8'));
    passed += report.numPassedTests;
    failed += report.numFailedTests + (report.numRuntimeErrorTestSuites || 0);
    skipped += report.numPendingTests;
  } else {
    // A missing report means that jest run never finished.
    failed += 1;
    console.error(`no report: ${args[i]}`);
  }
}
console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
