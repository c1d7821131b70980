/* SPDX-License-Identifier: UNLICENSED */
/*
 * unix-guard.h — what unix-guard.bpf.c and the loader (src/unix-guard.ts)
 * both read: the refused unix socket paths of resolving daemons. Kept apart
 * from cgfence.h so the two objects change independently; the event kinds
 * and family below are values cgfence.h leaves free.
 */
#ifndef CGF_UNIX_GUARD_H
#define CGF_UNIX_GUARD_H

#include <linux/types.h>

/* Bytes of sockaddr_un.sun_path. */
#define CGF_UNIX_PATH_LEN 108
/* At most this many refused socket paths. */
#define CGF_UNIX_PATHS_MAX 32

/* cgf_event.kind of a unix-socket refusal (audit: would-be refusal). */
#define CGF_EV_UNIX_REFUSED 16
#define CGF_EV_UNIX_AUDIT 17
/* cgf_event.family of those events; daddr[0..3] holds cgf_unix_value.id. */
#define CGF_FAMILY_UNIX 1

/* Key of cgf_unix_paths. len: bytes of path that count (a pathname: up to its
 * first NUL; an abstract name: path[0] == 0, then every byte up to the address
 * length). Bytes from len on are zero. */
struct cgf_unix_key {
	__u32 len;
	__u8 path[CGF_UNIX_PATH_LEN];
};

/* Value of cgf_unix_paths. */
struct cgf_unix_value {
	__u64 refusals; /* connects/sends refused (audit mode: would have been) */
	__u32 id;       /* the loader's number for this path, carried in events */
	__u32 _pad0;
};

#endif /* CGF_UNIX_GUARD_H */
