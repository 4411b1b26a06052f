/*
 * The AWS conventions every keymaker client follows, as the AWS CLI and boto3
 * do: a region from the option, AWS_REGION, AWS_DEFAULT_REGION or the
 * profile's `region`, else us-east-1 (IAM and STS are global services; their
 * global endpoints sign with us-east-1); a named profile (option or
 * AWS_PROFILE) must exist in the shared config or credentials file, or the
 * command stops naming it. The SDK alone would fall through to other
 * credential sources and blame a missing region or credentials instead.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { AwsError } from './errors';

export const GLOBAL_SIGNING_REGION = 'us-east-1';

export interface AwsConfigLookup {
  env?: NodeJS.ProcessEnv;
  homedir?: string;
  /** The file's text, or undefined when it cannot be read. */
  readFile?: (file: string) => string | undefined;
}

function readIfExists(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

/** The shared config and credentials files, as the SDK finds them. */
export function awsConfigFiles(lookup: AwsConfigLookup = {}): { configFile: string; credentialsFile: string } {
  const env = lookup.env ?? process.env;
  const home = lookup.homedir ?? (env.HOME || os.homedir());
  return {
    configFile: env.AWS_CONFIG_FILE || path.join(home, '.aws', 'config'),
    credentialsFile: env.AWS_SHARED_CREDENTIALS_FILE || path.join(home, '.aws', 'credentials'),
  };
}

/** Sections of an INI file and their keys (names trimmed; comments and continuation lines ignored). */
export function parseIni(text: string): Map<string, Record<string, string>> {
  const sections = new Map<string, Record<string, string>>();
  let current: Record<string, string> | undefined;
  for (const line of text.split(/\r?\n/)) {
    const header = /^\s*\[([^\]]*)\]\s*(?:[#;].*)?$/.exec(line);
    if (header) {
      const name = header[1]!.trim();
      current = sections.get(name) ?? {};
      sections.set(name, current);
      continue;
    }
    const entry = /^([^\s=#;][^=]*?)\s*=\s*(.*?)\s*$/.exec(line);
    if (entry && current) current[entry[1]!.trim().toLowerCase()] = entry[2]!;
  }
  return sections;
}

/** The profile's section: `[profile NAME]` (or `[default]`) in the config file, `[NAME]` in the credentials file. */
function profileSections(profile: string, lookup: AwsConfigLookup) {
  const read = lookup.readFile ?? readIfExists;
  const files = awsConfigFiles(lookup);
  const config = parseIni(read(files.configFile) ?? '');
  const credentials = parseIni(read(files.credentialsFile) ?? '');
  const fromConfig = config.get(`profile ${profile}`) ?? (profile === 'default' ? config.get('default') : undefined);
  return { files, fromConfig, fromCredentials: credentials.get(profile) };
}

export function awsProfileExists(profile: string, lookup: AwsConfigLookup = {}): boolean {
  const { fromConfig, fromCredentials } = profileSections(profile, lookup);
  return fromConfig !== undefined || fromCredentials !== undefined;
}

/** `--profile NAME` (or AWS_PROFILE) names a profile that is in neither file. */
export function unknownProfileError(profile: string, source: string, lookup: AwsConfigLookup = {}): AwsError {
  const { configFile, credentialsFile } = awsConfigFiles(lookup);
  return new AwsError(
    'UNKNOWN_PROFILE',
    `AWS profile ${JSON.stringify(profile)} (${source}) not found in ${configFile} or ${credentialsFile}; ` +
      'create it (aws configure --profile NAME) or name an existing one',
    { details: { profile, source, configFile, credentialsFile } },
  );
}

export interface AwsSettings {
  region: string;
  /** Where the region came from: option, AWS_REGION, AWS_DEFAULT_REGION, profile, default. */
  regionSource: 'option' | 'AWS_REGION' | 'AWS_DEFAULT_REGION' | 'profile' | 'default';
  /** The profile in effect (option, else AWS_PROFILE), checked to exist. */
  profile?: string;
}

/** A region someone named: the option, else AWS_REGION, else AWS_DEFAULT_REGION (blank is unset). */
export function explicitRegion(
  option: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
): { region: string; regionSource: 'option' | 'AWS_REGION' | 'AWS_DEFAULT_REGION' } | undefined {
  const named = (region: string | undefined) => (region && region.trim() ? region.trim() : undefined);
  const explicit = named(option);
  if (explicit) return { region: explicit, regionSource: 'option' };
  const fromEnv = named(env.AWS_REGION);
  if (fromEnv) return { region: fromEnv, regionSource: 'AWS_REGION' };
  const fromDefaultEnv = named(env.AWS_DEFAULT_REGION);
  if (fromDefaultEnv) return { region: fromDefaultEnv, regionSource: 'AWS_DEFAULT_REGION' };
  return undefined;
}

/**
 * Region and profile for one client: explicitRegion, else the profile's region, else us-east-1.
 * Throws UNKNOWN_PROFILE for a named profile that is in neither shared file. Reads the shared
 * files only when a profile is named or no region is set elsewhere.
 */
export function resolveAwsSettings(
  options: { region?: string; profile?: string },
  lookup: AwsConfigLookup = {},
): AwsSettings {
  const env = lookup.env ?? process.env;
  const profile = options.profile || env.AWS_PROFILE || undefined;
  const source = options.profile ? '--profile' : 'AWS_PROFILE';
  let section: Record<string, string> | undefined;
  if (profile !== undefined) {
    const found = profileSections(profile, lookup);
    if (!found.fromConfig && !found.fromCredentials) throw unknownProfileError(profile, source, lookup);
    section = found.fromConfig;
  }
  const explicit = explicitRegion(options.region, env);
  if (explicit) return { ...explicit, profile };
  if (profile === undefined) section = profileSections('default', lookup).fromConfig;
  const fromProfile = section?.region?.trim() || undefined;
  if (fromProfile) return { region: fromProfile, regionSource: 'profile', profile };
  return { region: GLOBAL_SIGNING_REGION, regionSource: 'default', profile };
}
