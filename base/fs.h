/* kiln base: small file-system helpers shared by every module (libc only). */
#ifndef KILN_BASE_FS_H
#define KILN_BASE_FS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "base/buf.h"
#include "base/error.h"

/* Reads a whole file into out (appending). Fails with EFBIG past max bytes (0 = no limit). */
int kn_read_file(const char *path, size_t max, struct kn_buf *out, kn_error **err);
/*
 * kn_read_file for a file kiln picks from a directory it does not trust (a build context):
 * when path lies under root (a realpath'd directory), it is opened relative to root with
 * openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS), so no symlink, absolute or with "..", leads
 * outside root (without openat2, a symlink anywhere below root is refused with ELOOP). A path
 * outside root (a file the user named) is read as it is.
 */
int kn_read_file_in_root(const char *root, const char *path, size_t max, struct kn_buf *out,
			 kn_error **err);
/* Opens rel below rootfd as kn_read_file_in_root does; returns the fd or -1 with errno set. */
int kn_openat_in_root(int rootfd, const char *rel, int flags);
/* Reads everything from fd into out (appending), with the same limit. */
int kn_read_fd(int fd, size_t max, struct kn_buf *out, kn_error **err);
/* Writes all of data to fd, retrying short writes and EINTR. */
int kn_write_all(int fd, const void *data, size_t len, kn_error **err);
/*
 * Replaces path atomically: writes a temp file beside it, fsyncs it, renames it over path and
 * fsyncs the directory. Readers see the old or the new content, never a mix.
 */
int kn_write_file_atomic(const char *path, const void *data, size_t len, mode_t mode, kn_error **err);
/* mkdir -p; existing directories are fine. */
int kn_mkdir_p(const char *path, mode_t mode, kn_error **err);
/* rm -rf without following symlinks; a missing path is fine. */
int kn_rm_rf(const char *path, kn_error **err);
/* fsyncs a directory (after a rename inside it). */
int kn_fsync_dir(const char *dir, kn_error **err);
/* Joins two path parts with exactly one '/' between them. Returns an owned string. */
char *kn_path_join(const char *a, const char *b);
bool kn_path_exists(const char *path);

#endif
