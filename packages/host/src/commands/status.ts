import {
  createIamClient,
  createStsClient,
  DeadlineError,
  EXIT_CODES,
  firstLine,
  getCallerIdentity,
  isKeymakerError,
  loadInstanceConfig,
  ROLE_CONFIG_TOKENS,
  withDeadline,
  type CallerIdentity,
  type RoleConfig,
} from '@keymaker/core';
import { loadHostCliRuntime } from './cli-runtime';
import { DEFAULT_HOST_CONFIG, efsHomeBaseOf, type HostConfig } from '../config/host-config';
import { isMountPoint } from '../system/mounts';
import { realRuntimeSystem, type RuntimeSystem } from '../system/runtime-system';
import { journalPath, parseJournal } from '../install/journal';
import { isKeymakerAuthenticationMethods, parseSshdT, SSHD_SETTINGS } from '../install/sshd-config';
import { nodeHostSystem, type HostSystem } from '../system/host-system';
import { readManagedAccounts } from '../accounts/managed-accounts';
import { DEFAULT_PATHS, type HostPaths } from '../system/paths';
import { applyAwsEnvironment, awsOptionsFor } from '../config/host-aws';
import type { StatPath } from '../system/root-owned';
import { agentInstallPaths } from '../install/agent-mode';
import {
  agentCheckRow,
  gatherAgent,
  gatherNss,
  gatherSshdCommandLine,
  nssCheckRow,
  sshdCommandLineProblem,
  type AgentFact,
  type NssFact,
  type SshdCommandLineFact,
} from './status-agent';

/**
 * `keymaker status` (alias `doctor`): what a host admin checks first. Read-only: it reads the host
 * config with the hooks' loader and trusted-file rules, asks STS who the host config's credentials
 * are, reads the role's keymaker tokens, runs `sshd -T`, and reads install's journal and the record
 * of managed accounts; it never writes a file, a cache or a directory. Fail closed: a check that
 * cannot be made is a problem, never "ok". `assessStatus` is the pure planner over gathered facts;
 * `gatherStatusFacts` is the thin part with side effects.
 */

/** A failure as status reports it: the error's stable code and its one-line message. */
export interface StatusError {
  code: string;
  message: string;
}

/** The host config, read as the hooks read it. */
export type HostConfigFact =
  { state: 'ok'; config: HostConfig } | { state: 'missing' } | { state: 'refused'; error: StatusError };

/** STS GetCallerIdentity through the host config's credential source; undefined when not asked. */
export type IdentityFact = { state: 'ok'; caller: CallerIdentity } | { state: 'error'; error: StatusError };

/** The role's description, parsed with core's parser; undefined when not read. */
export type RoleConfigFact =
  | { state: 'ok'; roleName: string; config: RoleConfig }
  | { state: 'error'; roleName: string; error: StatusError; problems: string[] };

/** `sshd -T`: its effective settings (lower-case keywords), or why there are none. */
export type SshdFact =
  | { state: 'skipped' }
  | { state: 'absent'; binary: string }
  | { state: 'failed'; binary: string; reason: string }
  | { state: 'read'; binary: string; settings: Record<string, string> };

/** Install's journal in the state directory. */
export type InstallFact =
  | { state: 'installed'; journal: string; files: number; lookupUser: string; mode: 'compat' | 'agent' }
  | { state: 'absent'; journal: string }
  | { state: 'unreadable'; journal: string; error: StatusError };

/** The record of managed accounts, read with the lookup's trusted-file rules. */
export type ManagedAccountsFact =
  | {
      state: 'read';
      file: string;
      count: number;
      exists: boolean;
      /** Locked by the sync (IAM user gone). */ locked?: number;
    }
  | { state: 'refused'; file: string; error: StatusError };

export interface StatusFacts {
  configFile: string;
  /** sshd's AuthorizedKeysCommand program when keymaker is the one that runs (paths.authorizedKeysCommand). */
  authorizedKeysCommand: string;
  hostConfig: HostConfigFact;
  identity?: IdentityFact;
  roleConfig?: RoleConfigFact;
  sshd: SshdFact;
  install: InstallFact;
  managedAccounts: ManagedAccountsFact;
  /** Agent mode's AuthorizedKeysCommand (the keys client). */
  keysClient?: string;
  /** Unit drop-ins that start sshd with its own -o AuthorizedKeysCommand (EC2 Instance Connect). */
  sshdCommandLine?: SshdCommandLineFact[];
  /** Agent mode only. */
  agent?: AgentFact;
  nss?: NssFact;
  /** Homes on EFS (host config efsHome); undefined when they are not. */
  efsHome?: EfsHomeFact;
}

/** The EFS home share: whether something is mounted on its base, and what (from /proc/self/mountinfo). */
export interface EfsHomeFact {
  efsHome: string;
  base: string;
  mounted: boolean;
  source?: string;
  fstype?: string;
}

export type StatusCheckId =
  'hostConfig' | 'credentials' | 'roleConfig' | 'sshd' | 'install' | 'managedAccounts' | 'agent' | 'nss' | 'efsHome';
export type StatusCheckState = 'ok' | 'problem' | 'skipped';

export interface StatusItem {
  name: string;
  value: string;
  /** False when this item is what makes the check a problem. */
  ok: boolean;
}

export interface StatusCheck {
  id: StatusCheckId;
  title: string;
  status: StatusCheckState;
  summary: string;
  items: StatusItem[];
  error?: StatusError;
}

export interface StatusReport {
  /** True when no check is a problem (skipped checks do not count). */
  ok: boolean;
  exitCode: number;
  checks: StatusCheck[];
}

/** The `sshd -T` keywords keymaker depends on, in the order status shows them. */
export const STATUS_SSHD_SETTINGS = [
  ...SSHD_SETTINGS.map((s) => s.keyword.toLowerCase()),
  // Not written by keymaker (an administrator's choice), but IAM users log in with keys.
  'pubkeyauthentication',
] as const;

function check(
  id: StatusCheckId,
  title: string,
  status: StatusCheckState,
  summary: string,
  items: StatusItem[] = [],
  error?: StatusError,
): StatusCheck {
  return { id, title, status, summary, items, ...(error ? { error } : {}) };
}

function hostConfigCheck(facts: StatusFacts): StatusCheck {
  const fact = facts.hostConfig;
  const title = 'host config';
  if (fact.state === 'ok') return check('hostConfig', title, 'ok', facts.configFile);
  if (fact.state === 'missing')
    return check(
      'hostConfig',
      title,
      'problem',
      `${facts.configFile} does not exist (keymaker install writes it); the hooks would run on defaults`,
    );
  return check('hostConfig', title, 'problem', `${facts.configFile} refused: ${fact.error.message}`, [], fact.error);
}

function credentialsCheck(facts: StatusFacts): StatusCheck {
  const title = 'credentials';
  const fact = facts.identity;
  if (!fact) return check('credentials', title, 'skipped', 'not checked: the host config was refused');
  if (fact.state === 'error')
    return check('credentials', title, 'problem', `${fact.error.code}: ${fact.error.message}`, [], fact.error);
  const { caller } = fact;
  const items = [
    { name: 'arn', value: caller.arn, ok: true },
    { name: 'account', value: caller.accountId, ok: true },
  ];
  if (caller.kind !== 'assumed-role') {
    const error = {
      code: 'NO_INSTANCE_ROLE',
      message: `the credentials are ${caller.arn}, not a role's: keymaker's host commands must run with the instance role (or the role credentials the host config names)`,
    };
    return check('credentials', title, 'problem', error.message, items, error);
  }
  return check('credentials', title, 'ok', caller.arn, [
    ...items,
    { name: 'role', value: caller.name ?? '', ok: true },
  ]);
}

function roleConfigCheck(facts: StatusFacts): StatusCheck {
  const title = 'role config';
  const fact = facts.roleConfig;
  if (!fact) return check('roleConfig', title, 'skipped', 'not checked: no role credentials to read it with');
  if (fact.state === 'error') {
    const items = fact.problems.map((problem) => ({ name: 'problem', value: problem, ok: false }));
    return check('roleConfig', title, 'problem', `role ${fact.roleName}: ${fact.error.message}`, items, fact.error);
  }
  // Core's token table, so a new token shows here without a second list to keep in step.
  const items = ROLE_CONFIG_TOKENS.filter(([, field]) => fact.config[field] !== undefined).map(([token, field]) => ({
    name: token,
    value: fact.config[field]!,
    ok: true,
  }));
  const summary =
    items.length === 0
      ? `role ${fact.roleName}: no keymaker tokens (the defaults apply)`
      : `role ${fact.roleName}: ${items.length} keymaker token(s), all well-formed`;
  return check('roleConfig', title, 'ok', summary, items);
}

const agentMode = (facts: StatusFacts): boolean =>
  facts.install.state === 'installed' && facts.install.mode === 'agent';

function lookupUserOf(facts: StatusFacts): string {
  if (facts.hostConfig.state === 'ok') return facts.hostConfig.config.authorizedKeysCommandUser;
  if (facts.install.state === 'installed') return facts.install.lookupUser;
  return DEFAULT_HOST_CONFIG.authorizedKeysCommandUser;
}

/** Why one effective sshd setting does not fit keymaker, or undefined when it does. */
function sshdSettingProblem(key: string, value: string | undefined, facts: StatusFacts): string | undefined {
  const want = (expected: string) =>
    value === undefined || value === expected ? undefined : `is "${value}", not "${expected}"`;
  switch (key) {
    case 'authorizedkeyscommand': {
      if (value === undefined || value === 'none') return 'is not set: sshd never asks keymaker for keys';
      const program = value.trim().split(/\s+/)[0];
      const ours = agentMode(facts) && facts.keysClient ? facts.keysClient : facts.authorizedKeysCommand;
      return program === ours ? undefined : `is another program's (${program}), not keymaker's ${ours}`;
    }
    case 'authorizedkeyscommanduser':
      return want(lookupUserOf(facts));
    case 'usepam':
    case 'pubkeyauthentication':
      return want('yes');
    // Agent mode changes neither: the first login needs no keyboard-interactive step.
    case 'kbdinteractiveauthentication':
      return agentMode(facts) ? undefined : want('yes');
    case 'authenticationmethods':
      if (agentMode(facts)) return undefined;
      return value === undefined || isKeymakerAuthenticationMethods(value)
        ? undefined
        : `is "${value}", not keymaker's (keyboard-interactive:pam before publickey, for the first login)`;
    default:
      return undefined;
  }
}

function sshdCheck(facts: StatusFacts): StatusCheck {
  const title = 'sshd';
  const fact = facts.sshd;
  if (fact.state === 'skipped') return check('sshd', title, 'skipped', 'not checked (--skip-sshd)');
  if (fact.state === 'absent')
    return check('sshd', title, 'problem', `sshd not found at ${fact.binary} (not installed? --sshd PATH names it)`);
  if (fact.state === 'failed')
    return check('sshd', title, 'problem', `sshd -T failed (${fact.binary}): ${fact.reason}`, [], {
      code: 'SSHD_CONFIG_INVALID',
      message: fact.reason,
    });
  const items: StatusItem[] = [];
  const problems: string[] = [];
  for (const key of STATUS_SSHD_SETTINGS) {
    const value = fact.settings[key];
    const problem = sshdSettingProblem(key, value, facts);
    items.push({ name: key, value: value ?? '(not shown by this sshd)', ok: problem === undefined });
    if (problem) problems.push(`${key} ${problem}`);
  }
  const commandLine = sshdCommandLineProblem(facts.sshdCommandLine ?? []);
  if (commandLine) {
    problems.push(commandLine);
    for (const f of facts.sshdCommandLine ?? [])
      items.push({ name: 'command line', value: `${f.file}: -o ${f.command}`, ok: false });
  }
  return problems.length === 0
    ? check('sshd', title, 'ok', "sshd -T: keymaker's AuthorizedKeysCommand and settings are in effect", items)
    : check('sshd', title, 'problem', `sshd -T: ${problems.join('; ')}`, items);
}

function installCheck(facts: StatusFacts): StatusCheck {
  const title = 'install';
  const fact = facts.install;
  if (fact.state === 'installed')
    return check('install', title, 'ok', `installed, ${fact.mode} mode (${fact.journal}: ${fact.files} file(s))`, [
      { name: 'mode', value: fact.mode, ok: true },
      { name: 'lookupUser', value: fact.lookupUser, ok: true },
    ]);
  if (fact.state === 'absent')
    return check('install', title, 'problem', `not installed (no ${fact.journal}; run keymaker install)`);
  return check('install', title, 'problem', `${fact.journal} unreadable: ${fact.error.message}`, [], fact.error);
}

function managedAccountsCheck(facts: StatusFacts): StatusCheck {
  const title = 'managed accounts';
  const fact = facts.managedAccounts;
  if (fact.state === 'refused')
    return check('managedAccounts', title, 'problem', `${fact.file} refused: ${fact.error.message}`, [], fact.error);
  return check(
    'managedAccounts',
    title,
    'ok',
    fact.exists
      ? `${fact.count} account(s) in ${fact.file}${fact.locked ? `, ${fact.locked} locked (their IAM user is gone)` : ''}`
      : `0 accounts (no ${fact.file} yet)`,
    [
      { name: 'count', value: String(fact.count), ok: true },
      { name: 'locked', value: String(fact.locked ?? 0), ok: true },
    ],
  );
}

function fromRow(id: StatusCheckId, title: string, row: ReturnType<typeof agentCheckRow>): StatusCheck {
  return check(id, title, row.status, row.summary, row.items);
}

function efsHomeCheck(fact: EfsHomeFact): StatusCheck {
  const title = 'efs home';
  const items = [
    { name: 'efsHome', value: fact.efsHome, ok: true },
    { name: 'base', value: fact.base, ok: fact.mounted },
    ...(fact.source ? [{ name: 'source', value: `${fact.source} (${fact.fstype ?? '?'})`, ok: true }] : []),
  ];
  return fact.mounted
    ? check('efsHome', title, 'ok', `mounted on ${fact.base}${fact.source ? ` from ${fact.source}` : ''}`, items)
    : check(
        'efsHome',
        title,
        'problem',
        `nothing is mounted on ${fact.base}: managed logins are refused until the share is mounted`,
        items,
      );
}

/** The mount on a path in /proc/self/mountinfo (the last one: the one on top), or undefined. */
export function mountOf(mountinfo: string, where: string): { source: string; fstype: string } | undefined {
  const unescape = (s: string) => s.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));
  let found: { source: string; fstype: string } | undefined;
  for (const line of mountinfo.split('\n')) {
    const fields = line.split(' ');
    const dash = fields.indexOf('-');
    if (dash < 0 || fields.length < dash + 3 || unescape(fields[4] ?? '') !== where) continue;
    found = { fstype: fields[dash + 1]!, source: unescape(fields[dash + 2]!) };
  }
  return found;
}

/** The pure planner: every check's row from the gathered facts, and the exit code. */
export function assessStatus(facts: StatusFacts): StatusReport {
  const checks = [
    hostConfigCheck(facts),
    credentialsCheck(facts),
    roleConfigCheck(facts),
    sshdCheck(facts),
    installCheck(facts),
    managedAccountsCheck(facts),
    ...(facts.agent ? [fromRow('agent', 'agent', agentCheckRow(facts.agent))] : []),
    ...(facts.nss ? [fromRow('nss', 'NSS', nssCheckRow(facts.nss))] : []),
    ...(facts.efsHome ? [efsHomeCheck(facts.efsHome)] : []),
  ];
  const ok = checks.every((c) => c.status !== 'problem');
  return { ok, exitCode: ok ? 0 : EXIT_CODES.STATUS_PROBLEMS, checks };
}

/** The readable table: one row per check, then its items indented below it (a problem item marked "!"). */
export function formatStatusTable(report: StatusReport): string {
  const titleWidth = Math.max(...report.checks.map((c) => c.title.length));
  const statusWidth = Math.max(...report.checks.map((c) => c.status.length));
  const lines: string[] = [];
  for (const c of report.checks) {
    lines.push(`${c.title.padEnd(titleWidth)}  ${c.status.padEnd(statusWidth)}  ${c.summary}`);
    const nameWidth = Math.max(0, ...c.items.map((i) => i.name.length));
    for (const item of c.items)
      lines.push(
        `${' '.repeat(titleWidth + statusWidth + 4)}${item.ok ? ' ' : '!'} ${item.name.padEnd(nameWidth)}  ${item.value}`,
      );
  }
  lines.push(
    report.ok ? 'status: ok' : `status: ${report.checks.filter((c) => c.status === 'problem').length} problem(s)`,
  );
  return `${lines.join('\n')}\n`;
}

// ---------------------------------------------------------------- gathering (side effects)

export interface StatusCommandOptions {
  /** Default /etc/keymaker/config.json. */
  config?: string;
  /** The sshd binary for `sshd -T` (default /usr/sbin/sshd). */
  sshd?: string;
  /** Do not run sshd -T (hosts or containers without sshd). */
  skipSshd?: boolean;
  json?: boolean;
}

export interface StatusEnv {
  paths?: Partial<HostPaths>;
  /** The host config reader (the hooks' RuntimeSystem). */
  sys?: RuntimeSystem;
  /** sshd -T and the install journal (install's HostSystem). */
  host?: HostSystem;
  statPath?: StatPath;
  env?: NodeJS.ProcessEnv;
  /** Overall deadline of the AWS calls, ms (default 15 s). */
  deadlineMs?: number;
  /** Where systemd unit drop-ins are looked for (tests). */
  unitDirs?: string[];
  /** The agent's keys socket (tests; default agent mode's). */
  agentSocket?: string;
  stdout?: (text: string) => void;
}

export const STATUS_AWS_DEADLINE_MS = 15_000;

function errorFact(error: unknown): StatusError {
  if (isKeymakerError(error)) return { code: error.code, message: firstLine(error.message) };
  return { code: 'INTERNAL', message: firstLine(error instanceof Error ? error.message : String(error)) };
}

async function gatherAws(
  config: HostConfig,
  deadlineMs: number,
): Promise<{ identity: IdentityFact; roleConfig?: RoleConfigFact }> {
  try {
    return await withDeadline(
      deadlineMs,
      async (_signal, deadline) => {
        const aws = { ...awsOptionsFor(config, deadlineMs), deadline };
        const sts = createStsClient(aws);
        let caller: CallerIdentity;
        try {
          caller = await getCallerIdentity(sts);
        } catch (error) {
          return { identity: { state: 'error', error: errorFact(error) } };
        }
        const identity: IdentityFact = { state: 'ok', caller };
        if (caller.kind !== 'assumed-role') return { identity };
        const roleName = caller.name!;
        try {
          const loaded = await loadInstanceConfig({ iam: createIamClient(aws), sts }, { requireRole: true, caller });
          return { identity, roleConfig: { state: 'ok', roleName, config: loaded.config } };
        } catch (error) {
          const details = isKeymakerError(error) ? error.details : {};
          const problems = Array.isArray(details.problems) ? details.problems.map(String) : [];
          return { identity, roleConfig: { state: 'error', roleName, error: errorFact(error), problems } };
        }
      },
      () => new DeadlineError(`STS and IAM did not answer within ${deadlineMs / 1000} s`),
    );
  } catch (error) {
    return { identity: { state: 'error', error: errorFact(error) } };
  }
}

function gatherSshd(host: HostSystem, paths: HostPaths, options: StatusCommandOptions): SshdFact {
  if (options.skipSshd) return { state: 'skipped' };
  const binary = options.sshd ?? '/usr/sbin/sshd';
  if (!host.stat(binary)) return { state: 'absent', binary };
  // Install's reader, without its one write (it creates /run/sshd when missing): status only reads.
  const args = paths.sshdConfig === DEFAULT_PATHS.sshdConfig ? ['-T'] : ['-T', '-f', paths.sshdConfig];
  const r = host.run([binary, ...args], { timeoutMs: 10_000 });
  if (r.code !== 0) return { state: 'failed', binary, reason: firstLine(r.stderr.trim() || r.stdout.trim()) };
  const settings: Record<string, string> = {};
  for (const [key, value] of parseSshdT(r.stdout)) settings[key] = value;
  return { state: 'read', binary, settings };
}

function gatherInstall(host: HostSystem, paths: HostPaths): InstallFact {
  const journal = journalPath(paths);
  try {
    const state = host.readFile(journal);
    if (!state) return { state: 'absent', journal };
    const parsed = parseJournal(state.content.toString('utf8'), journal);
    return {
      state: 'installed',
      journal,
      files: parsed.files.length,
      lookupUser: parsed.user.name,
      mode: parsed.agent ? 'agent' : 'compat',
    };
  } catch (error) {
    return { state: 'unreadable', journal, error: errorFact(error) };
  }
}

async function gatherManagedAccounts(
  host: HostSystem,
  file: string,
  statPath?: StatPath,
): Promise<ManagedAccountsFact> {
  try {
    const accounts = await readManagedAccounts(file, statPath);
    const exists = host.lstat(file) !== undefined;
    return { state: 'read', file, count: accounts.length, exists, locked: accounts.filter((a) => a.locked).length };
  } catch (error) {
    return { state: 'refused', file, error: errorFact(error) };
  }
}

/** The thin gatherer: every fact `assessStatus` needs, read (never written) from this host. */
export async function gatherStatusFacts(options: StatusCommandOptions, env: StatusEnv = {}): Promise<StatusFacts> {
  const paths = { ...DEFAULT_PATHS, ...env.paths };
  const configFile = options.config ?? paths.configFile;
  const host = env.host ?? nodeHostSystem();
  let hostConfig: HostConfigFact;
  try {
    const runtime = await loadHostCliRuntime({
      configFile,
      sys: env.sys ?? realRuntimeSystem,
      statPath: env.statPath,
      env: env.env,
    });
    hostConfig = runtime ? { state: 'ok', config: runtime.config } : { state: 'missing' };
  } catch (error) {
    hostConfig = { state: 'refused', error: errorFact(error) };
  }
  let aws: { identity?: IdentityFact; roleConfig?: RoleConfigFact } = {};
  if (hostConfig.state !== 'refused') {
    // Without a host config the hooks run on the defaults (the instance role): so does this check.
    const config = hostConfig.state === 'ok' ? hostConfig.config : { ...DEFAULT_HOST_CONFIG };
    if (hostConfig.state === 'missing') applyAwsEnvironment(config, env.env);
    aws = await gatherAws(config, env.deadlineMs ?? STATUS_AWS_DEADLINE_MS);
  }
  const install = gatherInstall(host, paths);
  const agentPaths = agentInstallPaths(paths);
  const agentMode = install.state === 'installed' && install.mode === 'agent';
  return {
    configFile,
    authorizedKeysCommand: paths.authorizedKeysCommand,
    keysClient: agentPaths.keysClient,
    hostConfig,
    ...aws,
    sshd: gatherSshd(host, paths, options),
    sshdCommandLine: options.skipSshd ? [] : gatherSshdCommandLine(host, env.unitDirs),
    install,
    managedAccounts: await gatherManagedAccounts(host, paths.managedAccounts, env.statPath),
    ...(agentMode
      ? {
          agent: await gatherAgent(env.agentSocket ?? agentPaths.keysSocket),
          nss: gatherNss(host, agentPaths.nsswitch),
        }
      : {}),
    ...(hostConfig.state === 'ok' ? gatherEfsHome(host, hostConfig.config) : {}),
  };
}

function gatherEfsHome(host: HostSystem, config: HostConfig): { efsHome?: EfsHomeFact } {
  const base = efsHomeBaseOf(config);
  if (!config.efsHome || !base) return {};
  const mounted = isMountPoint((p) => host.stat(p), base);
  const mount = mounted
    ? mountOf(host.readFile('/proc/self/mountinfo')?.content.toString('utf8') ?? '', base)
    : undefined;
  return { efsHome: { efsHome: config.efsHome, base, mounted, ...(mount ?? {}) } };
}

/** `keymaker status [--config PATH] [--sshd PATH] [--skip-sshd] [--json]`: the table or JSON on stdout; the exit code. */
export async function statusCommand(options: StatusCommandOptions, env: StatusEnv = {}): Promise<number> {
  const report = assessStatus(await gatherStatusFacts(options, env));
  const stdout = env.stdout ?? ((text: string) => process.stdout.write(text));
  stdout(options.json ? `${JSON.stringify(report, null, 2)}\n` : formatStatusTable(report));
  return report.exitCode;
}
