export * from './subjects';
export * from './documents';
export * from './signing';
export * from './verify';
