// Test-only entry for install-faults.e2e.test.ts, bundled by the test and run inside the sandbox:
// the install `keymaker install --region us-east-1 --sshd-pid-file PIDFILE` runs (same options,
// same defaults as cli/src/commands/install.ts), through a HostSystem whose atomic write reports
// each write on stderr and stops for good after the Nth, so the test can SIGKILL it between two
// writes. The fault lives here, in the test, not in the shipped HostSystem.
//   node install-fault-entry.mjs N PIDFILE BUNDLE
import * as fs from 'node:fs';
import { formatError } from '@keymaker/core';
import { runInstall } from '../src/install/apply';
import { nodeHostSystem, type HostSystem } from '../src/system/host-system';
import { DEFAULT_PATHS } from '../src/system/paths';

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
try {
  runInstall(
    pausingAfterWrite(nodeHostSystem(), Number(pauseAfter)),
    {
      paths: DEFAULT_PATHS,
      user: 'keymaker',
      nodePath: fs.realpathSync(process.execPath),
      force: false,
      schedule: 'auto',
      region: 'us-east-1',
      iamEndpoint: process.env.AWS_ENDPOINT_URL_IAM || undefined,
      stsEndpoint: process.env.AWS_ENDPOINT_URL_STS || undefined,
      bundleSource,
      sshd: '/usr/sbin/sshd',
      reload: 'auto',
      sshdPidFile,
      dryRun: false,
    },
    (line) => process.stderr.write(`keymaker: ${line}\n`),
  );
} catch (error) {
  process.stderr.write(`${formatError(error)}\n`);
  process.exitCode = 1;
}
