// dns-packet's table of record type mnemonics (its 'types' file has no typings of its own).
declare module 'dns-packet/types' {
  export function toString(type: number): string;
  export function toType(name: string): number;
}
