import {
  IAM_READ_ACTIONS,
  ec2TrustPolicy,
  instancePolicyDocument,
  resolverPolicyDocument,
  resolverTrustPolicy,
  selfServicePolicyDocument,
} from '@keymaker/admin';
import {
  canonicalPolicyJson,
  parsePolicyDocument,
  policiesEqual,
  trustPolicyAllows,
  withTrustStatement,
} from '../src/policies';

const RESOLVER = 'arn:aws:iam::111111111111:role/KeymakerIdResolver';
const INSTANCE = 'arn:aws:iam::222222222222:role/keymaker-instance';

describe('policy documents', () => {
  it('single-account instance policy', () => {
    expect(instancePolicyDocument()).toMatchSnapshot();
  });

  it('cross-account instance policy: no IAM reads, AssumeRole on exactly the resolver role', () => {
    const doc = instancePolicyDocument({ resolverRoleArn: RESOLVER });
    expect(doc).toMatchSnapshot();
    const actions = doc.Statement.flatMap((s) => [s.Action].flat());
    for (const read of IAM_READ_ACTIONS) expect(actions).not.toContain(read);
    const assume = doc.Statement.filter((s) => [s.Action].flat().includes('sts:AssumeRole'));
    expect(assume).toEqual([expect.objectContaining({ Resource: RESOLVER })]);
  });

  it('no statement grants a write, a wildcard action or AssumeRole on "*"', () => {
    for (const doc of [
      instancePolicyDocument(),
      instancePolicyDocument({ resolverRoleArn: RESOLVER }),
      resolverPolicyDocument(),
    ]) {
      for (const s of doc.Statement) {
        expect(s.Effect).toBe('Allow');
        for (const action of [s.Action].flat() as string[]) {
          expect(action).toMatch(/^(iam:(Get|List)[A-Za-z]+|sts:GetCallerIdentity|sts:AssumeRole)$/);
          if (action === 'sts:AssumeRole') expect(s.Resource).toBe(RESOLVER);
        }
      }
    }
  });

  it('the single-account policy holds the host calls, including ListUsers for pre-provisioning', () => {
    const actions = instancePolicyDocument().Statement.flatMap((s) => [s.Action].flat());
    expect(actions.sort()).toEqual(
      [
        'iam:GetSSHPublicKey',
        'iam:ListSSHPublicKeys',
        'iam:GetUser',
        'iam:ListUsers',
        'iam:ListGroups',
        'iam:GetGroup',
        'iam:ListGroupsForUser',
        'iam:GetRole',
        'sts:GetCallerIdentity',
      ].sort(),
    );
  });

  it('resolver policy equals the single-account policy', () => {
    expect(resolverPolicyDocument()).toEqual(instancePolicyDocument());
  });

  it('trust policies', () => {
    expect(ec2TrustPolicy()).toMatchSnapshot();
    expect(resolverTrustPolicy(INSTANCE)).toMatchSnapshot();
  });

  it('refuses something that is not a role ARN', () => {
    expect(() => resolverTrustPolicy('keymaker-instance')).toThrow(TypeError);
    expect(() => instancePolicyDocument({ resolverRoleArn: '*' })).toThrow(TypeError);
  });
});

describe('parsePolicyDocument', () => {
  const doc = { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: 'iam:GetUser', Resource: '*' }] };
  it('reads URL-encoded documents (as IAM returns them) and raw JSON', () => {
    expect(parsePolicyDocument(encodeURIComponent(JSON.stringify(doc)))).toEqual(doc);
    expect(parsePolicyDocument(JSON.stringify(doc))).toEqual(doc);
  });
  it('returns undefined for junk', () => {
    expect(parsePolicyDocument(undefined)).toBeUndefined();
    expect(parsePolicyDocument('')).toBeUndefined();
    expect(parsePolicyDocument('%E0%A4%A')).toBeUndefined();
    expect(parsePolicyDocument('[1]')).toBeUndefined();
  });
});

describe('policiesEqual', () => {
  it('ignores key order, action order, duplicates and single-vs-list', () => {
    const a = {
      Version: '2012-10-17',
      Statement: [{ Effect: 'Allow', Action: ['iam:GetUser', 'iam:GetGroup'], Resource: '*' }],
    };
    const b = {
      Statement: { Resource: ['*'], Action: ['iam:GetGroup', 'iam:GetUser', 'iam:GetUser'], Effect: 'Allow' },
      Version: '2012-10-17',
    };
    expect(policiesEqual(a, b)).toBe(true);
    expect(canonicalPolicyJson(a)).toBe(canonicalPolicyJson(b));
  });
  it('ignores statement order but not content', () => {
    const s1 = { Effect: 'Allow', Action: 'iam:GetUser', Resource: '*' };
    const s2 = { Effect: 'Allow', Action: 'sts:AssumeRole', Resource: RESOLVER };
    expect(policiesEqual({ Statement: [s1, s2] }, { Statement: [s2, s1] })).toBe(true);
    expect(policiesEqual({ Statement: [s1, s2] }, { Statement: [s1] })).toBe(false);
    expect(policiesEqual({ Statement: [s1] }, { Statement: [{ ...s1, Resource: 'arn:aws:iam::1:user/x' }] })).toBe(
      false,
    );
  });
  it('a changed resolver ARN is a different document', () => {
    expect(
      policiesEqual(
        instancePolicyDocument({ resolverRoleArn: RESOLVER }),
        instancePolicyDocument({ resolverRoleArn: RESOLVER.replace('111', '333') }),
      ),
    ).toBe(false);
  });
});

describe('trust policy helpers', () => {
  it('finds the principal in list or single form', () => {
    expect(trustPolicyAllows(ec2TrustPolicy(), { Service: 'ec2.amazonaws.com' })).toBe(true);
    const listed = {
      Statement: [
        {
          Effect: 'Allow',
          Principal: { AWS: ['arn:aws:iam::1:root', INSTANCE] },
          Action: ['sts:AssumeRole', 'sts:TagSession'],
        },
      ],
    };
    expect(trustPolicyAllows(listed, { AWS: INSTANCE })).toBe(true);
    expect(trustPolicyAllows(listed, { Service: 'ec2.amazonaws.com' })).toBe(false);
  });
  it('a Deny or another action does not count', () => {
    expect(
      trustPolicyAllows(
        { Statement: [{ Effect: 'Deny', Principal: { Service: 'ec2.amazonaws.com' }, Action: 'sts:AssumeRole' }] },
        { Service: 'ec2.amazonaws.com' },
      ),
    ).toBe(false);
    expect(
      trustPolicyAllows(
        { Statement: [{ Effect: 'Allow', Principal: { Service: 'ec2.amazonaws.com' }, Action: 'sts:TagSession' }] },
        { Service: 'ec2.amazonaws.com' },
      ),
    ).toBe(false);
    expect(trustPolicyAllows(undefined, { Service: 'ec2.amazonaws.com' })).toBe(false);
  });
  it('appends a statement and keeps the others', () => {
    const existing = {
      Version: '2012-10-17',
      Statement: { Effect: 'Allow', Principal: { Service: 'lambda.amazonaws.com' }, Action: 'sts:AssumeRole' },
    };
    const merged = withTrustStatement(existing, {
      Effect: 'Allow',
      Principal: { Service: 'ec2.amazonaws.com' },
      Action: 'sts:AssumeRole',
    });
    expect(merged.Statement).toEqual([
      existing.Statement,
      { Effect: 'Allow', Principal: { Service: 'ec2.amazonaws.com' }, Action: 'sts:AssumeRole' },
    ]);
    expect(trustPolicyAllows(merged, { Service: 'ec2.amazonaws.com' })).toBe(true);
    expect(trustPolicyAllows(merged, { Service: 'lambda.amazonaws.com' })).toBe(true);
  });
});

describe('the self-service policy (configure --self-service-group)', () => {
  const ACCOUNT = '123456789012';

  it('with MFA for uploads (the default)', () => {
    expect(selfServicePolicyDocument({ accountId: ACCOUNT })).toMatchSnapshot();
  });

  it('--no-mfa', () => {
    expect(selfServicePolicyDocument({ accountId: ACCOUNT, requireMfa: false })).toMatchSnapshot();
  });

  it("every statement is on the caller's own user only, and only SSH key actions", () => {
    for (const requireMfa of [true, false]) {
      for (const s of selfServicePolicyDocument({ accountId: ACCOUNT, requireMfa }).Statement) {
        expect(s.Effect).toBe('Allow');
        expect(s.Resource).toBe(`arn:aws:iam::${ACCOUNT}:user/\${aws:username}`);
        for (const action of [s.Action].flat() as string[])
          expect(action).toMatch(/^iam:(List|Get|Upload|Update|Delete)SSHPublicKeys?$/);
      }
    }
  });

  it('only the upload carries the MFA condition, and --no-mfa drops it', () => {
    const conditioned = (requireMfa: boolean) =>
      selfServicePolicyDocument({ accountId: ACCOUNT, requireMfa })
        .Statement.filter((s) => s.Condition)
        .map((s) => [s.Action, s.Condition]);
    expect(conditioned(true)).toEqual([['iam:UploadSSHPublicKey', { Bool: { 'aws:MultiFactorAuthPresent': 'true' } }]]);
    expect(conditioned(false)).toEqual([]);
  });

  it('refuses an account that is not 12 digits and a partition that is not one', () => {
    expect(() => selfServicePolicyDocument({ accountId: '*' })).toThrow(/12 digits/);
    expect(() => selfServicePolicyDocument({ accountId: ACCOUNT, partition: 'aws:*' })).toThrow(/partition/);
  });
});
