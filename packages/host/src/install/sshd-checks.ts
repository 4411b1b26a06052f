// sshd as install sees it: sshd -t / -T on the live files, on a candidate copy and per probe (the baseline
// install must not weaken), and the reload through whatever the host has (systemd, init.d, SIGHUP).
import * as path from 'node:path';
import { firstLine, HostError } from '@keymaker/core';
import type { FileState, HostSystem } from '../system/host-system';
import type { HostPaths } from '../system/paths';
import type { InstallSnapshot } from './plan';
import {
  authenticationWeakenings,
  baselineMain,
  candidateMainForDropIn,
  effectiveSettingProblems,
  expectedEffectiveSettings,
  parseSshdT,
  removeSshdBlocks,
  sshdProbes,
  type SshdProbe,
} from './sshd-config';
import type { MatchProbe, ValidateStep } from './steps';

export type ReloadStrategy = 'auto' | 'systemd' | 'service' | 'pidfile' | 'none';

export interface SshdOptions {
  /** The sshd binary used for -t/-T. Default /usr/sbin/sshd. */
  sshd: string;
  reload: ReloadStrategy;
  /** sshd's pid file for --reload pidfile/auto (default: PidFile from `sshd -T`). */
  sshdPidFile?: string;
}

export const isSystemdRunning = (sys: HostSystem) => sys.stat('/run/systemd/system')?.type === 'dir';

export function sshdRun(sys: HostSystem, sshd: string, args: string[]) {
  // sshd -t/-T refuse to run without the privilege separation directory (it lives on /run).
  if (!sys.stat('/run/sshd') && sys.stat('/run')) sys.mkdir('/run/sshd', 0o755, 0, 0);
  return sys.run([sshd, ...args]);
}

export function sshdFileArgs(paths: HostPaths, file?: string): string[] {
  if (file) return ['-f', file];
  return paths.sshdConfig === '/etc/ssh/sshd_config' ? [] : ['-f', paths.sshdConfig];
}

export function effectiveSshdConfig(
  sys: HostSystem,
  opts: SshdOptions,
  paths: HostPaths,
  file?: string,
  beforeChanges = true,
): Map<string, string> {
  const r = sshdRun(sys, opts.sshd, ['-T', ...sshdFileArgs(paths, file)]);
  if (r.code !== 0) {
    const reason = firstLine(r.stderr.trim() || r.stdout.trim());
    throw new HostError(
      'SSHD_CONFIG_INVALID',
      file || !beforeChanges
        ? `sshd -T rejects the ${file ? 'candidate' : 'new'} sshd configuration: ${reason}`
        : `refusing to install: sshd rejects the configuration on disk (the running sshd may still use an older one), so nothing was changed: ${reason}; fix it first (check with sshd -t)`,
    );
  }
  return parseSshdT(r.stdout);
}

/** `sshd -T -f file [-C spec]` for one probe; the candidate's file names are shown as the live ones. */
function probeSshdT(
  sys: HostSystem,
  opts: SshdOptions,
  file: string,
  probe: SshdProbe,
  shown: [string, string][],
): Map<string, string> {
  const r = sshdRun(sys, opts.sshd, ['-T', '-f', file, ...(probe.spec ? ['-C', probe.spec] : [])]);
  if (r.code !== 0) {
    let reason = firstLine(r.stderr.trim() || r.stdout.trim());
    for (const [from, to] of shown) reason = reason.split(from).join(to);
    throw new HostError(
      'SSHD_CONFIG_INVALID',
      `refusing to install: sshd -T rejects the configuration for ${probe.label}, so nothing was changed: ${reason}`,
    );
  }
  return parseSshdT(r.stdout);
}

/**
 * What sshd accepts without keymaker's lines (see "authentication strength" in sshd-config.ts):
 * sshd_config with keymaker's block taken out and its drop-in read as empty, asked once per probe.
 */
export function gatherBaseline(
  sys: HostSystem,
  opts: SshdOptions & { paths: HostPaths },
  files: Record<string, FileState | undefined>,
  dirEntries: string[],
): InstallSnapshot['baseline'] {
  const { paths } = opts;
  const main = files[paths.sshdConfig];
  if (!main) return undefined;
  const mainText = main.content.toString('utf8');
  const texts = [
    mainText,
    ...dirEntries
      .filter((n) => n !== path.basename(paths.sshdDropIn))
      .map((n) => sys.readFile(path.join(paths.sshdConfigDir, n))?.content.toString('utf8') ?? ''),
  ];
  const probes = sshdProbes(
    texts,
    sys.readFile('/etc/passwd')?.content.toString('utf8'),
    sys.readFile('/etc/group')?.content.toString('utf8'),
  );
  // Nothing of keymaker's in place (a first install): the live files are the baseline, no temp copy needed.
  if (!files[paths.sshdDropIn] && removeSshdBlocks(mainText, paths).text === mainText) {
    return probes.map((probe) => ({ probe, settings: probeSshdT(sys, opts, paths.sshdConfig, probe, []) }));
  }
  const dir = path.dirname(paths.sshdConfig);
  const tag = sys.randomName();
  const tempMain = path.join(dir, `.keymaker-candidate-${tag}`);
  const emptyDropIn = path.join(dir, `.keymaker-candidate-${tag}.conf`);
  try {
    sys.writeFileAtomic(emptyDropIn, '', 0o600, 0, 0);
    sys.writeFileAtomic(tempMain, baselineMain(mainText, dirEntries, paths, emptyDropIn), 0o600, 0, 0);
    return probes.map((probe) => ({
      probe,
      settings: probeSshdT(sys, opts, tempMain, probe, [[tempMain, paths.sshdConfig]]),
    }));
  } finally {
    sys.removeFile(tempMain);
    sys.removeFile(emptyDropIn);
  }
}

/**
 * Validates the sshd configuration keymaker is about to switch to, before
 * anything is switched: a temp copy of sshd_config in /etc/ssh whose drop-in
 * Include is expanded with the new drop-in in its sorted place (or the main
 * config with the block inserted), checked with `sshd -t -f` and `sshd -T -f`.
 */
export function validateCandidate(
  sys: HostSystem,
  opts: SshdOptions,
  paths: HostPaths,
  step: Extract<ValidateStep, { check: 'sshdCandidate' }>,
): void {
  const dir = path.dirname(paths.sshdConfig);
  const tag = sys.randomName();
  const tempMain = path.join(dir, `.keymaker-candidate-${tag}`);
  const tempDropIn = path.join(dir, `.keymaker-candidate-${tag}.conf`);
  const mainText = step.mainText;
  const temps: string[] = [];
  try {
    let candidate = mainText;
    if (step.dropIn) {
      sys.writeFileAtomic(tempDropIn, step.dropIn.content, 0o600, 0, 0);
      temps.push(tempDropIn);
      candidate = candidateMainForDropIn(mainText, step.dropIn.include, step.sshdConfigDirEntries, paths, tempDropIn);
    }
    sys.writeFileAtomic(tempMain, candidate, 0o600, 0, 0);
    temps.push(tempMain);
    const check = sshdRun(sys, opts.sshd, ['-t', '-f', tempMain]);
    if (check.code !== 0) {
      const reason = firstLine(
        (check.stderr.trim() || check.stdout.trim())
          .split(tempMain)
          .join(paths.sshdConfig)
          .split(tempDropIn)
          .join(paths.sshdDropIn),
      );
      throw new HostError(
        'SSHD_CONFIG_INVALID',
        `refusing to install: sshd -t rejects the configuration with keymaker's settings, so nothing was changed: ${reason}`,
      );
    }
    const problems = effectiveSettingProblems(
      effectiveSshdConfig(sys, opts, paths, tempMain),
      step.expected ?? expectedEffectiveSettings(paths, step.user, step.authenticationMethods),
    );
    if (problems.length > 0) {
      throw new HostError(
        'SSHD_CONFIG_INVALID',
        `refusing to install: with keymaker's settings in place sshd would still use ${problems.join('; ')}; an earlier line of the sshd configuration sets it first (sshd keeps the first value it reads): remove that line, then run install again`,
      );
    }
    // Never weaken authentication: the same probes as the baseline, on the candidate.
    for (const { probe, settings } of step.baseline) {
      const after = probeSshdT(sys, opts, tempMain, probe, [
        [tempMain, paths.sshdConfig],
        [tempDropIn, paths.sshdDropIn],
      ]);
      const reasons = authenticationWeakenings(settings, after);
      if (reasons.length > 0) {
        throw new HostError(
          'WEAKER_AUTHENTICATION',
          `refusing to install: keymaker's sshd settings would weaken authentication for ${probe.label}, so nothing was changed: ${reasons.join('; ')}`,
          { details: { probe: probe.spec ?? null, reasons } },
        );
      }
    }
  } finally {
    for (const t of temps) sys.removeFile(t);
  }
}

/** After the switch: the live config as sshd will read it at reload. */
export function validateLive(
  sys: HostSystem,
  opts: SshdOptions & { user?: string; authenticationMethods?: string; expected?: Record<string, string> },
  paths: HostPaths,
): void {
  const check = sshdRun(sys, opts.sshd, ['-t', ...sshdFileArgs(paths)]);
  if (check.code !== 0)
    throw new HostError(
      'SSHD_CONFIG_INVALID',
      `sshd -t rejects the new sshd configuration: ${firstLine(check.stderr.trim())}`,
    );
  if (opts.user) {
    const problems = effectiveSettingProblems(
      effectiveSshdConfig(sys, opts, paths, undefined, false),
      opts.expected ?? expectedEffectiveSettings(paths, opts.user, opts.authenticationMethods),
    );
    if (problems.length > 0)
      throw new HostError(
        'SSHD_CONFIG_INVALID',
        `keymaker's sshd settings did not take effect: ${problems.join('; ')}`,
      );
  }
}

/** Reloads sshd through what the host has; a stopped sshd is not an error. Returns what happened. */
export function reloadSshd(sys: HostSystem, opts: SshdOptions, paths: HostPaths): string {
  if (opts.reload === 'none') return 'sshd not reloaded (--reload none): run your usual sshd reload';
  if (opts.reload === 'systemd' || (opts.reload === 'auto' && isSystemdRunning(sys))) {
    for (const unit of ['ssh.service', 'sshd.service']) {
      if (sys.run(['systemctl', 'is-active', '--quiet', unit]).code !== 0) continue;
      const r = sys.run(['systemctl', 'reload', unit]);
      if (r.code !== 0)
        throw new HostError('SYSTEM_COMMAND_FAILED', `systemctl reload ${unit} failed: ${firstLine(r.stderr.trim())}`);
      return `reloaded sshd (systemctl reload ${unit})`;
    }
    return 'sshd is not running (no active ssh/sshd unit); the settings apply when it starts';
  }
  if (opts.reload === 'service') {
    for (const name of ['ssh', 'sshd']) {
      if (!sys.stat(`/etc/init.d/${name}`)) continue;
      const r = sys.run(['service', name, 'reload']);
      if (r.code !== 0)
        throw new HostError(
          'SYSTEM_COMMAND_FAILED',
          `service ${name} reload failed: ${firstLine(r.stderr.trim() || r.stdout.trim())}`,
        );
      return `reloaded sshd (service ${name} reload)`;
    }
    throw new HostError('SYSTEM_COMMAND_FAILED', 'no /etc/init.d/ssh or /etc/init.d/sshd for --reload service');
  }
  let pidFile = opts.sshdPidFile;
  if (!pidFile) {
    try {
      pidFile = effectiveSshdConfig(sys, opts, paths).get('pidfile');
    } catch {
      /* validated elsewhere */
    }
    pidFile ??= '/run/sshd.pid';
  }
  const text = sys.readFile(pidFile)?.content.toString('utf8').trim() ?? '';
  const pid = /^\d+$/.test(text) ? Number(text) : undefined;
  if (pid === undefined || !sys.processAlive(pid) || sys.processName(pid) !== 'sshd') {
    if (opts.reload === 'pidfile' && opts.sshdPidFile)
      throw new HostError('SYSTEM_COMMAND_FAILED', `no running sshd with the pid in ${pidFile}`);
    return `sshd is not running (no live sshd pid in ${pidFile}); the settings apply when it starts`;
  }
  sys.signal(pid, 'SIGHUP');
  // sshd re-executes itself with the same pid; a config it cannot load makes it exit.
  for (let i = 0; i < 10; i++) {
    sys.sleep(100);
    if (!sys.processAlive(pid)) {
      throw new HostError(
        'SYSTEM_COMMAND_FAILED',
        `sshd (pid ${pid}) exited after SIGHUP; check its log and start it again`,
      );
    }
  }
  return `reloaded sshd (SIGHUP to pid ${pid} from ${pidFile})`;
}

/**
 * `sshd -T -C user=NAME` per probe. A managed user must get `AuthorizedKeysFile none` (her own
 * authorized_keys is never read); a local one must keep the administrator's setting (the Match block did
 * not swallow later lines, nor change hers).
 */
export function validateMatch(sys: HostSystem, opts: SshdOptions, paths: HostPaths, probes: MatchProbe[]): void {
  for (const probe of probes) {
    const spec = probe.spec ?? `user=${probe.user},host=keymaker-install-check,addr=127.0.0.1`;
    const r = sshdRun(sys, opts.sshd, ['-T', ...sshdFileArgs(paths), '-C', spec]);
    if (r.code !== 0)
      throw new HostError('SSHD_CONFIG_INVALID', `sshd -T -C ${spec} failed: ${firstLine(r.stderr.trim())}`);
    const files = parseSshdT(r.stdout).get('authorizedkeysfile');
    const ok = probe.managed
      ? files === 'none'
      : probe.expect !== undefined
        ? files === probe.expect
        : files !== 'none';
    if (!ok)
      throw new HostError(
        'SSHD_CONFIG_INVALID',
        `sshd -T -C user=${probe.user} shows AuthorizedKeysFile ${files ?? '(unset)'}; expected ${probe.managed ? 'none (a keymaker account authenticates only through IAM)' : `${probe.expect ?? 'the usual files'} (a local user keeps the administrator's setting)`}`,
      );
  }
}
