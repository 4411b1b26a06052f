// Test-only entry for install-faults.e2e.test.ts, bundled by the test and run inside the sandbox:
// the install `keymaker install --mode compat --region us-east-1 --sshd-pid-file PIDFILE` runs (the options
// built by the CLI's own installOptionsFromFlags), through a HostSystem whose atomic write reports
// each write on stderr and stops for good after the Nth, so the test can SIGKILL it between two
// writes. The fault lives here, in the test, not in the shipped HostSystem.
//   node install-fault-entry.mjs N PIDFILE BUNDLE
import * as fs from 'node:fs';
import { formatError } from '@keymaker/core';
import { runInstall } from '../src/install/apply';
import { nodeHostSystem, type HostSystem } from '../src/system/host-system';
import { installOptionsFromFlags } from '../src/install/install-flags';

function pausingAfterWrite(sys: HostSystem, pauseAfter: number): HostSystem {
  let writes = 0;
  return {
    ...sys,
    writeFileAtomic(p, content, mode, uid, gid) {
      sys.writeFileAtomic(p, content, mode, uid, gid);
      writes += 1;
      fs.writeSync(2, `keymaker-test: write ${writes}: ${p}\n`);
      if (writes !== pauseAfter) return;
      fs.writeSync(2, `keymaker-test: paused after write ${writes}\n`);
      for (;;) sys.sleep(60_000);
    },
  };
}

const [pauseAfter, sshdPidFile, bundleSource] = process.argv.slice(2);
if (!pauseAfter || !sshdPidFile || !bundleSource) throw new Error('usage: install-fault-entry N PIDFILE BUNDLE');
// The CLI's own mapping of install's flags (defaults, endpoints from the environment), given only
// the flags the test passes: `--mode compat --region us-east-1 --sshd-pid-file PIDFILE --bundle BUNDLE`.
installOptionsFromFlags({ mode: 'compat', region: 'us-east-1', sshdPidFile, bundle: bundleSource })
  .then((options) =>
    runInstall(pausingAfterWrite(nodeHostSystem(), Number(pauseAfter)), options, (line) =>
      process.stderr.write(`keymaker: ${line}\n`),
    ),
  )
  .catch((error: unknown) => {
    process.stderr.write(`${formatError(error)}\n`);
    process.exitCode = 1;
  });
