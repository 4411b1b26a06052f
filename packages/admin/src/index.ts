export * from './policies';
export * from './options';
export * from './state';
export * from './plan';
export * from './apply';
export * from './command';
