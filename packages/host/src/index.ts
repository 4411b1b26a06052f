export * from './paths';
export * from './host-config';
export * from './lookup';
