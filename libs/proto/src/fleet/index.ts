export * from './subjects';
export * from './nest-wire';
export * from './documents';
export * from './signing';
export * from './verify';
