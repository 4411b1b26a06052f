export * from '../system/host-system';
export * from './safe-path';
export * from './sshd-config';
export * from './pam';
export * from './templates';
export * from './journal';
export * from './plan';
export * from './apply';
