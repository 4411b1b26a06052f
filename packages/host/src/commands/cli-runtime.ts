/*
 * `get_uid`, `get_groups` and `get_authorized_keys` run by a person on an
 * instance: they must answer what the installed hooks answer, so they read
 * the host config the same way (trusted-file checks, credentials and config
 * files, profile, endpoints, region, the read-only cache). On a machine
 * without a host config file they are client commands: undefined here.
 */
import type { AwsClientOptions, Resolution } from '@keymaker/core';
import { FileCacheStore } from '../system/cache-store';
import type { HostConfig } from '../config/host-config';
import { realRuntimeSystem, type RuntimeSystem } from '../system/runtime-system';
import { DEFAULT_PATHS } from '../system/paths';
import { applyAwsEnvironment, awsOptionsFor, loadHostConfig, resolveWithConfig } from '../config/host-aws';
import { assertTrustedFile, runtimeTrustedFiles, type StatPath } from '../system/root-owned';

export interface HostCliRuntime {
  configFile: string;
  config: HostConfig;
  /** Client options from the host config; the CLI lays its explicit flags over them. */
  aws: AwsClientOptions;
  /** Resolves the directory as the lookup does (cache read, never written); a function, handed on unbound. */
  resolve: (aws: AwsClientOptions) => Promise<Resolution>;
}

export interface HostCliRuntimeOptions {
  /** Default /etc/keymaker/config.json. */
  configFile?: string;
  cacheDir?: string;
  sys?: RuntimeSystem;
  statPath?: StatPath;
  env?: NodeJS.ProcessEnv;
}

export async function loadHostCliRuntime(options: HostCliRuntimeOptions = {}): Promise<HostCliRuntime | undefined> {
  const configFile = options.configFile ?? DEFAULT_PATHS.configFile;
  const sys = options.sys ?? realRuntimeSystem;
  if ((await sys.readFile(configFile)) === undefined) return undefined;
  const config = await loadHostConfig(sys, configFile);
  for (const file of runtimeTrustedFiles(configFile, config, config.authorizedKeysCommandUser)) {
    await assertTrustedFile(file, options.statPath);
  }
  applyAwsEnvironment(config, options.env);
  const cacheDir = options.cacheDir ?? DEFAULT_PATHS.cacheDir;
  return {
    configFile,
    config,
    aws: awsOptionsFor(config),
    resolve: (aws) =>
      resolveWithConfig(aws, {
        store: new FileCacheStore({ dir: cacheDir, writable: false }),
        ttlMs: config.cacheTtlSeconds * 1000,
      }),
  };
}
