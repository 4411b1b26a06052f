/*
 * `configure`'s options as a command line or a script passes them, validated into one typed ConfigureOptions:
 * IAM names checked against IAM's rules, the instance role as a name or an ARN, defaults filled in.
 */
import {
  AwsError,
  InputError,
  RoleConfigError,
  awsProfileExists as coreAwsProfileExists,
  unknownProfileError,
  type AwsConfigLookup,
  assertValidRoleConfig,
  iamRoleNameProblem,
  isAccountId,
  parseArn,
  parseRoleArn,
  roleConfigValueProblem,
  UID_SCHEMES,
  type RoleConfig,
  type UidScheme,
} from '@keymaker/core';
import { DEFAULT_SELF_SERVICE_IAM_POLICY } from './policies';

export const DEFAULT_ID_RESOLVER_IAM_ROLE = 'KeymakerIdResolver';
export const DEFAULT_INSTANCE_IAM_POLICY = 'KeymakerInstanceIAMReadAccess';
export { DEFAULT_SELF_SERVICE_IAM_POLICY };

/** Options as a command line or a script hands them over (camelCase or kebab-case keys). */
export interface RawConfigureOptions {
  instanceIamRole?: unknown;
  requireIamGroup?: unknown;
  sudoIamGroup?: unknown;
  usernameSuffix?: unknown;
  crossAccountProfile?: unknown;
  idResolverIamRole?: unknown;
  instanceIamPolicy?: unknown;
  uidScheme?: unknown;
  linuxGroupPrefix?: unknown;
  /** IAM group whose members may manage their own SSH keys (the self-service policy is attached to it). */
  selfServiceGroup?: unknown;
  /** false (--no-mfa): uploads by self-service members need no MFA. Default true. */
  mfa?: unknown;
  [key: string]: unknown;
}

/** The instance role as given: a name (current account) or an ARN (maybe another account). */
export interface InstanceRoleRef {
  name: string;
  /** IAM path, "/" unless the ARN carried one. */
  path: string;
  /** Set when an ARN was given. */
  accountId?: string;
  partition?: string;
  arn?: string;
}

/** Validated configure options. Build with parseConfigureOptions. */
export interface ConfigureOptions {
  instanceRole: InstanceRoleRef;
  requireIamGroup?: string;
  sudoIamGroup?: string;
  usernameSuffix?: string;
  crossAccountProfile?: string;
  idResolverIamRole: string;
  instanceIamPolicy: string;
  uidScheme?: UidScheme;
  linuxGroupPrefix?: string;
  /** --self-service-group: the policy letting each member manage only her own SSH keys, attached to the group. */
  selfService?: SelfServiceOptions;
}

export interface SelfServiceOptions {
  /** The IAM group, in the account of the IAM users (the current credentials'). */
  group: string;
  /** Uploads need MFA (aws:MultiFactorAuthPresent); false with --no-mfa. */
  requireMfa: boolean;
  /** The managed policy's name. */
  policyName: string;
}

const OPTION_KEYS: Record<keyof RawConfigureOptions & string, string> = {
  instanceIamRole: 'instance-iam-role',
  requireIamGroup: 'require-iam-group',
  sudoIamGroup: 'sudo-iam-group',
  usernameSuffix: 'username-suffix',
  crossAccountProfile: 'cross-account-profile',
  idResolverIamRole: 'id-resolver-iam-role',
  instanceIamPolicy: 'instance-iam-policy',
  uidScheme: 'uid-scheme',
  linuxGroupPrefix: 'linux-group-prefix',
  selfServiceGroup: 'self-service-group',
};

function invalid(option: string, value: string, problem: string, fix: string): InputError {
  return new InputError('INVALID_ARGUMENT', `--${option} ${JSON.stringify(value)}: ${problem}; ${fix}`, {
    details: { option, value },
  });
}

/** One option's value: a string, or undefined. Lists (a repeated flag) and non-strings are refused. */
function stringOption(raw: RawConfigureOptions, key: keyof typeof OPTION_KEYS): string | undefined {
  const flag = OPTION_KEYS[key]!;
  const value = raw[key] ?? raw[flag];
  if (value === undefined || value === null) return undefined;
  if (Array.isArray(value))
    throw new InputError('INVALID_ARGUMENT', `--${flag} was given ${value.length} times; give it once`);
  if (typeof value !== 'string')
    throw new InputError('INVALID_ARGUMENT', `--${flag} needs a text value, got ${typeof value}`);
  // A value with control characters never comes from an honest command line and would corrupt the plan output.
  // eslint-disable-next-line no-control-regex -- matching control characters is the point here
  if (/[\u0000-\u001f\u007f]/.test(value))
    throw new InputError('INVALID_ARGUMENT', `--${flag} contains a control character; remove it`);
  return value;
}

/** IAM managed policy names: 1-128 of A-Z a-z 0-9 +=,.@_- */
export function iamPolicyNameProblem(name: string): string | undefined {
  if (name.length === 0) return 'it is empty';
  if (name.length > 128) return 'it is longer than 128 characters';
  if (!/^[A-Za-z0-9+=,.@_-]+$/.test(name)) return 'IAM policy names contain only letters, digits and +=,.@_-';
  return undefined;
}

/** IAM paths: "/" or /segment/.../ of printable ASCII, at most 512 characters. */
function iamPathProblem(p: string): string | undefined {
  if (p.length > 512) return 'its path is longer than 512 characters';
  if (!/^\/(?:[\x21-\x2e\x30-\x7e]+\/)*$/.test(p)) return 'its path must be "/" or "/segment/.../"';
  return undefined;
}

export function parseInstanceRole(value: string): InstanceRoleRef {
  const flag = 'instance-iam-role';
  if (value.startsWith('arn:')) {
    const role = parseRoleArn(value);
    const parsed = parseArn(value);
    if (!role || !parsed) {
      throw invalid(
        flag,
        value,
        'this is not a valid IAM role ARN',
        'use arn:aws:iam::123456789012:role/NAME or just the role NAME',
      );
    }
    if (parsed.region !== '')
      throw invalid(flag, value, 'an IAM role ARN has no region', 'use arn:aws:iam::123456789012:role/NAME');
    const rolePath = `/${parsed.resource.slice('role/'.length, parsed.resource.length - role.roleName.length)}`;
    const pathProblem = iamPathProblem(rolePath);
    if (pathProblem) throw invalid(flag, value, pathProblem, 'fix the ARN');
    if (!isAccountId(role.accountId)) throw invalid(flag, value, 'the account ID must be 12 digits', 'fix the ARN');
    // Rebuilt rather than copied so that the ARN in trust policies is exactly what IAM reports.
    const arn = `arn:${role.partition}:iam::${role.accountId}:role${rolePath}${role.roleName}`;
    return { name: role.roleName, path: rolePath, accountId: role.accountId, partition: role.partition, arn };
  }
  const problem = iamRoleNameProblem(value);
  if (problem) {
    throw invalid(
      flag,
      value,
      `not a valid IAM role name or ARN (${problem})`,
      'pass a role name (1-64 of A-Z a-z 0-9 +=,.@_-) or a role ARN',
    );
  }
  return { name: value, path: '/' };
}

/** AWS profile names as the shared config files can hold them. */
function profileNameProblem(name: string): string | undefined {
  if (name.length === 0) return 'it is empty';
  if (name.length > 128) return 'it is longer than 128 characters';
  if (/[\s[\]#;=]/.test(name)) return 'a profile name cannot contain spaces or any of [ ] # ; =';
  return undefined;
}

/**
 * Validates every option before any AWS call. Each problem throws one line
 * naming the option and the fix.
 */
export function parseConfigureOptions(raw: RawConfigureOptions): ConfigureOptions {
  if (!raw || typeof raw !== 'object') throw new InputError('USAGE', 'configure options must be an object');
  const roleValue = stringOption(raw, 'instanceIamRole');
  if (roleValue === undefined || roleValue === '') {
    throw new InputError(
      'USAGE',
      '--instance-iam-role is required; pass the instance role NAME or its ARN (arn:aws:iam::ACCOUNT:role/NAME)',
    );
  }
  const instanceRole = parseInstanceRole(roleValue);

  const idResolverIamRole = stringOption(raw, 'idResolverIamRole') ?? DEFAULT_ID_RESOLVER_IAM_ROLE;
  const roleProblem = iamRoleNameProblem(idResolverIamRole);
  if (roleProblem)
    throw invalid(
      'id-resolver-iam-role',
      idResolverIamRole,
      roleProblem,
      'pass a role name of 1-64 of A-Z a-z 0-9 +=,.@_-',
    );

  const instanceIamPolicy = stringOption(raw, 'instanceIamPolicy') ?? DEFAULT_INSTANCE_IAM_POLICY;
  const policyProblem = iamPolicyNameProblem(instanceIamPolicy);
  if (policyProblem)
    throw invalid(
      'instance-iam-policy',
      instanceIamPolicy,
      policyProblem,
      'pass a policy name of 1-128 of A-Z a-z 0-9 +=,.@_-',
    );

  const crossAccountProfile = stringOption(raw, 'crossAccountProfile');
  if (crossAccountProfile !== undefined) {
    const problem = profileNameProblem(crossAccountProfile);
    if (problem)
      throw invalid(
        'cross-account-profile',
        crossAccountProfile,
        problem,
        'pass the name of a profile in ~/.aws/config',
      );
  }

  const options: ConfigureOptions = { instanceRole, idResolverIamRole, instanceIamPolicy };
  if (crossAccountProfile !== undefined) options.crossAccountProfile = crossAccountProfile;

  // Each value is checked as the role description will hold it; the first bad one throws.
  const checked = (key: keyof typeof OPTION_KEYS, field: keyof RoleConfig, fix: string): string | undefined => {
    const value = stringOption(raw, key);
    if (value === undefined) return undefined;
    const problem = roleConfigValueProblem(field, value);
    if (problem) throw invalid(OPTION_KEYS[key]!, value, problem, fix);
    return value;
  };
  const groupFix = 'pass an IAM group name (1-128 of A-Z a-z 0-9 +=,.@_-)';
  const requireIamGroup = checked('requireIamGroup', 'requireIamGroup', groupFix);
  if (requireIamGroup !== undefined) options.requireIamGroup = requireIamGroup;
  const sudoIamGroup = checked('sudoIamGroup', 'sudoIamGroup', groupFix);
  if (sudoIamGroup !== undefined) options.sudoIamGroup = sudoIamGroup;
  const suffixFix = 'use at most 63 of A-Z a-z 0-9 +=,.@_- (e.g. @example.com)';
  const usernameSuffix = checked('usernameSuffix', 'linuxUserSuffix', suffixFix);
  if (usernameSuffix !== undefined) options.usernameSuffix = usernameSuffix;
  const prefixFix = 'use a non-empty prefix of A-Z a-z 0-9 +=.@_- (default keymaker_)';
  const linuxGroupPrefix = checked('linuxGroupPrefix', 'linuxGroupPrefix', prefixFix);
  if (linuxGroupPrefix !== undefined) options.linuxGroupPrefix = linuxGroupPrefix;
  const uidScheme = checked('uidScheme', 'uidScheme', 'pass wide (default) or legacy');
  const scheme = UID_SCHEMES.find((known) => known === uidScheme); // checked above: found when given
  if (scheme !== undefined) options.uidScheme = scheme;
  if (options.usernameSuffix === '') delete options.usernameSuffix; // an empty suffix is the default
  const selfService = selfServiceOption(raw, checked('selfServiceGroup', 'requireIamGroup', groupFix));
  if (selfService) options.selfService = selfService;
  // The tokens must also survive the round trip through a role description.
  assertValidRoleConfig(roleConfigFor(options));
  return options;
}

/** --self-service-group GROUP [--no-mfa]; --no-mfa alone is refused (it would silently do nothing). */
function selfServiceOption(raw: RawConfigureOptions, group: string | undefined): SelfServiceOptions | undefined {
  const mfa = raw.mfa ?? (raw['no-mfa'] === true || raw.noMfa === true ? false : undefined);
  if (mfa !== undefined && typeof mfa !== 'boolean')
    throw new InputError('INVALID_ARGUMENT', '--mfa takes no value; pass --no-mfa to let uploads go without MFA');
  if (group === undefined) {
    if (mfa === false)
      throw new InputError(
        'USAGE',
        '--no-mfa applies to --self-service-group only; pass --self-service-group GROUP with it, or drop it',
      );
    return undefined;
  }
  return { group, requireMfa: mfa !== false, policyName: DEFAULT_SELF_SERVICE_IAM_POLICY };
}

/** The keymaker_* tokens configure writes, without the resolver pair (set by the plan when cross-account). */
export function roleConfigFor(
  options: ConfigureOptions,
  resolver?: { accountId: string; roleName: string },
): RoleConfig {
  const config: RoleConfig = {};
  if (resolver) {
    config.idResolverAccount = resolver.accountId;
    config.idResolverIamRole = resolver.roleName;
  }
  if (options.requireIamGroup !== undefined) config.requireIamGroup = options.requireIamGroup;
  if (options.usernameSuffix !== undefined) config.linuxUserSuffix = options.usernameSuffix;
  if (options.linuxGroupPrefix !== undefined) config.linuxGroupPrefix = options.linuxGroupPrefix;
  if (options.uidScheme !== undefined) config.uidScheme = options.uidScheme;
  if (options.sudoIamGroup !== undefined) config.sudoIamGroup = options.sudoIamGroup;
  try {
    return assertValidRoleConfig(config);
  } catch (error) {
    if (error instanceof RoleConfigError)
      throw new InputError('INVALID_ARGUMENT', `configure options: ${error.message}`);
    throw error;
  }
}

/** Where the shared config and credentials files are looked up (core's AwsConfigLookup). */
export type ProfileLookupEnv = AwsConfigLookup;

/**
 * Whether a named profile exists in the shared config or credentials file
 * (AWS_CONFIG_FILE / AWS_SHARED_CREDENTIALS_FILE or ~/.aws/...). Checked
 * before any call because the SDK, given a missing profile, falls through to
 * other credential sources and reports only "could not load credentials".
 */
export function awsProfileExists(profile: string, lookup: ProfileLookupEnv = {}): boolean {
  return coreAwsProfileExists(profile, lookup);
}

/** The same UNKNOWN_PROFILE error as --profile / AWS_PROFILE, naming the files looked in. */
export function profileNotFound(profile: string, lookup: ProfileLookupEnv = {}): AwsError {
  return unknownProfileError(profile, '--cross-account-profile', lookup);
}

export function assertAwsProfileExists(profile: string, lookup: ProfileLookupEnv = {}): void {
  if (!awsProfileExists(profile, lookup)) throw profileNotFound(profile, lookup);
}
