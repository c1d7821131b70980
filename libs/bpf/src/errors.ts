// The loader's error type and the helpers that turn libbpf's error
// conventions into it (shared by the DataPlane and the trie builder thread).
import { describeErrno, lastErrno, Ptr } from './libbpf';

/** Thrown by DataPlane; `step` names what was being done ('open', 'load', 'attach cgf_connect4', ...). */
export class DataPlaneError extends Error {
  constructor(
    readonly step: string,
    message: string,
    readonly errno?: number,
  ) {
    super(`cgfence bpf: ${step}: ${message}`);
    this.name = 'DataPlaneError';
  }
}

export function fail(step: string, what: string, errnum: number): never {
  throw new DataPlaneError(step, `${what} failed: ${describeErrno(errnum)}`, Math.abs(errnum));
}

/** Runs a libbpf call returning a pointer (NULL + errno on error). */
export function ptrStep(step: string, what: string, call: () => Ptr | null): Ptr {
  const p = call();
  if (!p) fail(step, what, lastErrno());
  return p;
}

/** Runs a libbpf call returning an int (negative errno on error). */
export function intStep(step: string, what: string, call: () => number): number {
  const rc = call();
  if (rc < 0) fail(step, what, rc);
  return rc;
}
