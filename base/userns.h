/* kiln base: running without root, inside a user namespace (rootless kiln). */
#ifndef KILN_BASE_USERNS_H
#define KILN_BASE_USERNS_H

#include <stdbool.h>
#include <sys/types.h>

#include "base/error.h"

/**
 * Rootless kiln, after `buildah unshare` / rootlesskit: a user who is not root runs the whole
 * kiln process inside a user namespace where they are root, so that the store (layers unpacked
 * into snapshots, upper dirs diffed into layers) holds files with the image's own IDs as seen
 * from inside, and RUN steps run as root with the image's IDs. On the host those files belong to
 * the user's subordinate IDs; inside, uid 0 is the user and 1..N their /etc/subuid range.
 *
 * kn_userns_enter() must be called while the process is single-threaded (before any thread is
 * created), by a process whose effective uid is not 0; for root it does nothing and returns 0.
 * It reads the ranges /etc/subuid and /etc/subgid give the user (by name or by uid, every range
 * of the user, in file order) and, when both exist and newuidmap/newgidmap (Debian's `uidmap`)
 * are found, maps uid/gid 0 to the user and 1..N to those ranges through a helper process that
 * runs them on this process after unshare(CLONE_NEWUSER). Without ranges (or without those
 * tools) only the user's own uid and gid are mapped, to 0: operations that need another ID
 * then fail with EINVAL, and kn_userns_unmapped_hint() says how to add ranges. Returns -1 with
 * *err set when the namespace cannot be created (the message says what to check) or newuidmap
 * fails.
 */
int kn_userns_enter(kn_error **err);

/**
 * True when this process runs in a user namespace other than the initial one (whether kiln
 * entered it or was started in one, e.g. in a rootless container): overlayfs then keeps its
 * bookkeeping in user.overlay.* xattrs (userxattr), trusted.* xattrs and device nodes cannot be
 * made, and sysfs can only be mounted in a network namespace of our own. Computed once.
 */
bool kn_userns_active(void);

/** The uid kiln was started with (before kn_userns_enter(); geteuid() when it was not called). */
uid_t kn_userns_host_uid(void);

/**
 * The number of IDs mapped in this user namespace (uid and gid maps, the smaller): 1 when only
 * the user's own ID is mapped. 0 outside a user namespace (every ID).
 */
unsigned long kn_userns_mapped_ids(void);

/**
 * When an operation failed with EINVAL because an ID is not mapped (chown, setuid in a rootless
 * build), a hint to add: " (uid 1000 has no ID on the host: ...usermod --add-subuids...)" with
 * the command to run. Returns an owned string, "" when the ID is mapped or not in a user
 * namespace.
 */
char *kn_userns_unmapped_hint(unsigned long id);
/** For kn_userns_unmapped_hint() when the ID is not known: the hint names no ID. */
#define KN_USERNS_SOME_ID ((unsigned long)-1)

#endif
