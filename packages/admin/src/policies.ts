/**
 * The IAM documents Keymaker needs, as pure functions, plus the semantic
 * comparison used to decide whether IAM already holds them.
 */

export const POLICY_LANGUAGE_VERSION = '2012-10-17';

export type StringOrList = string | string[];

export interface PolicyStatement {
  Sid?: string;
  Effect: 'Allow' | 'Deny';
  Action?: StringOrList;
  NotAction?: StringOrList;
  Resource?: StringOrList;
  NotResource?: StringOrList;
  Principal?: '*' | Record<string, StringOrList>;
  Condition?: Record<string, unknown>;
}

export interface PolicyDocument {
  Version: string;
  Statement: PolicyStatement[];
}

/**
 * What the host calls in the account that holds the IAM users. Each action is
 * here because a login or a sync makes that call (see @keymaker/core):
 */
export const IAM_READ_ACTIONS = [
  // IamDirectory.authorizedKeys: the body of each active key (GetSSHPublicKey, Encoding=SSH).
  'iam:GetSSHPublicKey',
  // IamDirectory.authorizedKeys: which keys a user has and whether they are active.
  'iam:ListSSHPublicKeys',
  // IamDirectory user lookup: the user's unique ID, from which the UID derives.
  'iam:GetUser',
  // Host sync pre-provisioning: lists the users that have active keys, to create their accounts ahead of login.
  'iam:ListUsers',
  // Host group sync: finds the IAM groups carrying keymaker_linux_group_prefix.
  'iam:ListGroups',
  // Host group sync and keymaker_require_iam_group: a group's members and its unique ID (the GID).
  'iam:GetGroup',
  // Login: a user's groups, for keymaker_require_iam_group and supplementary Linux groups.
  'iam:ListGroupsForUser',
] as const;

/**
 * What the instance role calls on itself. Both are needed in the instance's
 * own account, whether or not an ID resolver is configured.
 */
export const INSTANCE_SELF_ACTIONS = [
  // loadInstanceConfig -> readRoleConfig: reads the keymaker_* tokens from the instance role's description.
  'iam:GetRole',
] as const;

// getCallerIdentity: finds the instance role's name and account. AWS answers it
// without any grant; it is listed so the policy names every call Keymaker makes.
export const CALLER_IDENTITY_ACTION = 'sts:GetCallerIdentity';

// assumeResolverRole: obtains credentials in the ID-resolver account.
export const ASSUME_ROLE_ACTION = 'sts:AssumeRole';

export interface InstancePolicyOptions {
  /**
   * Cross-account: the ID-resolver role ARN. The instance policy then grants
   * only what the instance needs in its own account plus sts:AssumeRole on
   * exactly this role; the IAM reads happen in the resolver account instead.
   */
  resolverRoleArn?: string;
}

/**
 * The policy attached to the instance role.
 *
 * Single-account: the IAM reads, GetRole on the instance's own role, and
 * GetCallerIdentity. Cross-account: no IAM reads at all (there are no Keymaker
 * users in the instance account, so reading them would only widen what a
 * compromised instance can see), just GetRole, GetCallerIdentity and
 * sts:AssumeRole on the resolver role.
 *
 * Resources are "*" for the reads: ListUsers/ListGroups cannot be scoped, and
 * one managed policy is commonly shared by several instance roles, so scoping
 * GetRole to a single role would make configure runs for different roles
 * fight over the document.
 */
export function instancePolicyDocument(options: InstancePolicyOptions = {}): PolicyDocument {
  const { resolverRoleArn } = options;
  if (resolverRoleArn === undefined) {
    return {
      Version: POLICY_LANGUAGE_VERSION,
      Statement: [
        { Sid: 'KeymakerReadIamUsersAndGroups', Effect: 'Allow', Action: [...IAM_READ_ACTIONS], Resource: '*' },
        { Sid: 'KeymakerReadInstanceRoleConfig', Effect: 'Allow', Action: [...INSTANCE_SELF_ACTIONS], Resource: '*' },
        { Sid: 'KeymakerIdentifyInstanceRole', Effect: 'Allow', Action: CALLER_IDENTITY_ACTION, Resource: '*' },
      ],
    };
  }
  if (typeof resolverRoleArn !== 'string' || !/^arn:[a-z0-9-]+:iam::\d{12}:role\/\S+$/.test(resolverRoleArn)) {
    throw new TypeError(`resolverRoleArn must be an IAM role ARN, got ${JSON.stringify(resolverRoleArn)}`);
  }
  return {
    Version: POLICY_LANGUAGE_VERSION,
    Statement: [
      { Sid: 'KeymakerReadInstanceRoleConfig', Effect: 'Allow', Action: [...INSTANCE_SELF_ACTIONS], Resource: '*' },
      { Sid: 'KeymakerIdentifyInstanceRole', Effect: 'Allow', Action: CALLER_IDENTITY_ACTION, Resource: '*' },
      { Sid: 'KeymakerAssumeIdResolverRole', Effect: 'Allow', Action: ASSUME_ROLE_ACTION, Resource: resolverRoleArn },
    ],
  };
}

/**
 * The policy attached to the ID-resolver role (cross-account). It is the
 * single-account instance policy on purpose: the resolver account may also
 * run single-account instances with the same policy name, and one document
 * for both uses keeps configure from rewriting it back and forth. The extra
 * iam:GetRole and sts:GetCallerIdentity only read.
 */
export function resolverPolicyDocument(): PolicyDocument {
  return instancePolicyDocument();
}

/** Default name of the self-service policy (configure --self-service-group). */
export const DEFAULT_SELF_SERVICE_IAM_POLICY = 'KeymakerSelfServiceSSHKeys';

export interface SelfServicePolicyOptions {
  partition?: string;
  /** The 12-digit account that holds the IAM users (and the group the policy is attached to). */
  accountId: string;
  /** Uploads need MFA in the signed-in session (aws:MultiFactorAuthPresent). Default true. */
  requireMfa?: boolean;
}

/**
 * Who may grant access (issue 12): whoever can put an SSH key on an IAM user can log in as that user, so the
 * members of the self-service group may manage only their OWN keys: the one resource is the caller's own user
 * (`${aws:username}`, users at path /). List and read, enable/disable (UpdateSSHPublicKey) and delete need no
 * MFA (a stolen session can only lock its owner out); an upload, the one call that grants a login, needs MFA
 * unless requireMfa is false. A session without MFA (long-term access keys) has no aws:MultiFactorAuthPresent,
 * and the Bool condition then fails: no upload.
 */
export function selfServicePolicyDocument(options: SelfServicePolicyOptions): PolicyDocument {
  const partition = options.partition ?? 'aws';
  if (!/^\d{12}$/.test(options.accountId))
    throw new TypeError(`accountId must be 12 digits, got ${JSON.stringify(options.accountId)}`);
  if (!/^aws(-[a-z]+)*$/.test(partition)) throw new TypeError(`not an AWS partition: ${JSON.stringify(partition)}`);
  const ownUser = `arn:${partition}:iam::${options.accountId}:user/\${aws:username}`;
  const upload: PolicyStatement = {
    Sid: options.requireMfa === false ? 'KeymakerUploadOwnSshKeys' : 'KeymakerUploadOwnSshKeysWithMfa',
    Effect: 'Allow',
    Action: 'iam:UploadSSHPublicKey',
    Resource: ownUser,
  };
  if (options.requireMfa !== false) upload.Condition = { Bool: { 'aws:MultiFactorAuthPresent': 'true' } };
  return {
    Version: POLICY_LANGUAGE_VERSION,
    Statement: [
      {
        Sid: 'KeymakerReadOwnSshKeys',
        Effect: 'Allow',
        Action: ['iam:ListSSHPublicKeys', 'iam:GetSSHPublicKey'],
        Resource: ownUser,
      },
      {
        Sid: 'KeymakerEnableDisableDeleteOwnSshKeys',
        Effect: 'Allow',
        Action: ['iam:UpdateSSHPublicKey', 'iam:DeleteSSHPublicKey'],
        Resource: ownUser,
      },
      upload,
    ],
  };
}

export const EC2_SERVICE_PRINCIPAL = 'ec2.amazonaws.com';

/** Trust policy of the instance role: EC2 may assume it (for the instance profile). */
export function ec2TrustPolicy(): PolicyDocument {
  return {
    Version: POLICY_LANGUAGE_VERSION,
    Statement: [{ Effect: 'Allow', Principal: { Service: EC2_SERVICE_PRINCIPAL }, Action: ASSUME_ROLE_ACTION }],
  };
}

/** Trust policy of the ID-resolver role: only the instance role may assume it. */
export function resolverTrustPolicy(instanceRoleArn: string): PolicyDocument {
  if (typeof instanceRoleArn !== 'string' || !/^arn:[a-z0-9-]+:iam::\d{12}:role\/\S+$/.test(instanceRoleArn)) {
    throw new TypeError(`instanceRoleArn must be an IAM role ARN, got ${JSON.stringify(instanceRoleArn)}`);
  }
  return {
    Version: POLICY_LANGUAGE_VERSION,
    Statement: [{ Effect: 'Allow', Principal: { AWS: instanceRoleArn }, Action: ASSUME_ROLE_ACTION }],
  };
}

/**
 * IAM returns policy documents URL-encoded (GetPolicyVersion, GetRole's
 * AssumeRolePolicyDocument); some emulators return them raw. Accepts both.
 * Returns undefined for anything that is not a JSON object.
 */
export function parsePolicyDocument(text: string | undefined | null): Record<string, unknown> | undefined {
  if (typeof text !== 'string' || text.length === 0) return undefined;
  for (const candidate of [() => text, () => decodeURIComponent(text)]) {
    try {
      const value: unknown = JSON.parse(candidate());
      if (value && typeof value === 'object' && !Array.isArray(value)) return value as Record<string, unknown>;
    } catch {
      /* try the next form */
    }
  }
  return undefined;
}

// Fields whose single value and one-element list mean the same, and whose order does not matter.
const SET_FIELDS = new Set(['Action', 'NotAction', 'Resource', 'NotResource']);

function canonical(value: unknown, key?: string, parentKey?: string): unknown {
  if (Array.isArray(value)) {
    const items = value.map((item) => canonical(item, undefined, key));
    const isSet = (key !== undefined && SET_FIELDS.has(key)) || parentKey === 'Principal';
    if (isSet && items.every((item) => typeof item === 'string')) {
      const sorted = [...new Set(items)].sort();
      return sorted.length === 1 ? sorted[0] : sorted;
    }
    if (key === 'Statement') {
      const sorted = items.map((item) => JSON.stringify(item)).sort();
      return sorted.length === 1 ? (JSON.parse(sorted[0]!) as unknown) : sorted.map((s) => JSON.parse(s) as unknown);
    }
    return items;
  }
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(value).sort()) out[k] = canonical((value as Record<string, unknown>)[k], k, key);
    return out;
  }
  return value;
}

/** Canonical JSON of a policy document: key order, list order and single-vs-list do not matter. */
export function canonicalPolicyJson(document: unknown): string {
  return JSON.stringify(canonical(document));
}

export function policiesEqual(a: unknown, b: unknown): boolean {
  return canonicalPolicyJson(a) === canonicalPolicyJson(b);
}

function asList(value: unknown): unknown[] {
  if (value === undefined) return [];
  return Array.isArray(value) ? value : [value];
}

/**
 * True when a trust policy already lets `principal` (e.g. { Service: 'ec2.amazonaws.com' })
 * call sts:AssumeRole. Conditions on such a statement are left to their
 * owner: configure never adds an unconditional statement beside one that a
 * person restricted on purpose.
 */
export function trustPolicyAllows(document: unknown, principal: { Service?: string; AWS?: string }): boolean {
  if (!document || typeof document !== 'object') return false;
  const statements = asList((document as Record<string, unknown>).Statement);
  return statements.some((raw) => {
    if (!raw || typeof raw !== 'object') return false;
    const s = raw as Record<string, unknown>;
    if (s.Effect !== 'Allow') return false;
    if (!asList(s.Action).some((a) => a === ASSUME_ROLE_ACTION)) return false;
    const p = s.Principal;
    if (!p || typeof p !== 'object') return false;
    return Object.entries(principal).every(([kind, wanted]) =>
      asList((p as Record<string, unknown>)[kind]).some((have) => have === wanted),
    );
  });
}

/** The existing trust policy with `statement` appended; other statements are kept as they are. */
export function withTrustStatement(document: unknown, statement: PolicyStatement): Record<string, unknown> {
  const base = document && typeof document === 'object' ? (document as Record<string, unknown>) : {};
  return {
    ...base,
    Version: typeof base.Version === 'string' ? base.Version : POLICY_LANGUAGE_VERSION,
    Statement: [...asList(base.Statement), statement],
  };
}
