import { execFileSync } from 'node:child_process';

/** A user account as the system's name service (NSS: files, LDAP, …) knows it. */
export interface UserAccount {
  readonly name: string;
  readonly uid: number;
  /** Primary group id. */
  readonly gid: number;
  readonly home: string;
}

export interface GroupEntry {
  readonly name: string;
  readonly gid: number;
}

const NAME = /^[A-Za-z0-9_.][A-Za-z0-9_.-]{0,63}\$?$/;

/** One `getent DATABASE KEY` line, or undefined when the key is unknown. */
function getent(database: 'passwd' | 'group', key: string): string[] | undefined {
  if (!NAME.test(key)) return undefined;
  try {
    // getent asks NSS, so accounts from LDAP or sssd are found like local ones.
    const out = execFileSync('getent', [database, key], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 5000 });
    const line = out.split('\n')[0];
    return line ? line.split(':') : undefined;
  } catch {
    return undefined; // exit 2: no such key
  }
}

/** A user by name or numeric uid; undefined when there is no such user. */
export function lookupUser(nameOrUid: string | number): UserAccount | undefined {
  const f = getent('passwd', String(nameOrUid));
  if (!f || f.length < 7) return undefined;
  return { name: f[0]!, uid: Number(f[2]), gid: Number(f[3]), home: f[5]! };
}

/** A group by name or numeric gid; undefined when there is no such group. */
export function lookupGroup(nameOrGid: string | number): GroupEntry | undefined {
  const f = getent('group', String(nameOrGid));
  if (!f || f.length < 3) return undefined;
  return { name: f[0]!, gid: Number(f[2]) };
}

/** The user name of a uid, or the uid as text when it has no name (a container's user). */
export function userNameOf(uid: number): string {
  return lookupUser(uid)?.name ?? String(uid);
}
