/* kiln builder: the build context (a directory, or a tar stream unpacked into the store's tmp
 * dir) and its .dockerignore. */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "builder/build-internal.h"

/* Unpacks a context tar from fd into dir, refusing absolute paths, `..` and symlink tricks. */
static int ctx_unpack(int fd, const char *dir, kn_error **err)
{
	struct archive *a = archive_read_new(), *w = archive_write_disk_new();
	struct archive_entry *e;
	_cleanup_close_ int cwd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	int r, ret = 0;

	archive_read_support_filter_all(a);
	archive_read_support_format_tar(a);
	archive_read_support_format_gnutar(a);
	archive_write_disk_set_options(w, ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_PERM |
						  ARCHIVE_EXTRACT_SECURE_SYMLINKS |
						  ARCHIVE_EXTRACT_SECURE_NODOTDOT |
						  ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS |
						  ARCHIVE_EXTRACT_OWNER);
	if (cwd < 0 || chdir(dir) < 0) {
		ret = kn_error_errno(err, "cannot enter '%s'", dir);
		goto out;
	}
	if (archive_read_open_fd(a, fd, 65536) != ARCHIVE_OK) {
		ret = kn_error_set(err, EINVAL, "cannot read the context tar: %s", archive_error_string(a));
		goto out_chdir;
	}
	for (;;) {
		r = archive_read_next_header(a, &e);
		if (r == ARCHIVE_EOF)
			break;
		if (r < ARCHIVE_WARN) {
			ret = kn_error_set(err, EINVAL, "cannot read the context tar: %s", archive_error_string(a));
			goto out_chdir;
		}
		r = archive_write_header(w, e);
		if (r < ARCHIVE_WARN) {
			ret = kn_error_set(err, EPERM, "context tar entry '%s': %s", archive_entry_pathname(e),
					   archive_error_string(w));
			goto out_chdir;
		}
		if (archive_entry_size(e) > 0) {
			const void *buf;
			size_t len;
			la_int64_t off;

			while ((r = archive_read_data_block(a, &buf, &len, &off)) == ARCHIVE_OK) {
				if (archive_write_data_block(w, buf, len, off) < ARCHIVE_WARN) {
					ret = kn_error_set(err, EIO, "context tar entry '%s': %s",
							   archive_entry_pathname(e), archive_error_string(w));
					goto out_chdir;
				}
			}
			if (r != ARCHIVE_EOF) {
				ret = kn_error_set(err, EINVAL, "cannot read the context tar: %s",
						   archive_error_string(a));
				goto out_chdir;
			}
		}
		archive_write_finish_entry(w);
	}
	if (archive_write_close(w) != ARCHIVE_OK)
		ret = kn_error_set(err, EIO, "cannot unpack the context: %s", archive_error_string(w));
out_chdir:
	if (fchdir(cwd) < 0 && ret == 0)
		ret = kn_error_errno(err, "cannot return to the working directory");
out:
	archive_read_free(a);
	archive_write_free(w);
	return ret;
}

int ctx_open(struct bld *b, kn_error **err)
{
	const struct bld_options *o = b->o;
	char *real;

	if (o->context_dir) {
		real = realpath(o->context_dir, NULL);
		if (!real)
			return kn_error_errno(err, "unable to prepare context: path '%s' not found", o->context_dir);
	} else {
		const char *tmp = store_tmpdir(b->store, err);

		if (!tmp)
			return -1;
		real = kn_path_join(tmp, "context");
		if (mkdir(real, 0755) < 0) {
			int r = kn_error_errno(err, "cannot create '%s'", real);

			free(real);
			return r;
		}
		if (o->context_tar_fd >= 0 && ctx_unpack(o->context_tar_fd, real, err) < 0) {
			free(real);
			return -1;
		}
	}
	b->ctx_dir = real;
	b->ctx_fd = open(real, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (b->ctx_fd < 0)
		return kn_error_errno(err, "unable to prepare context: '%s' is not a directory", real);
	return 0;
}

int ctx_load_ignore(struct bld *b, const char *dockerfile_path, kn_error **err)
{
	_cleanup_strv_ char **cands = NULL;

	cands = df_ignore_candidates(b->ctx_dir, dockerfile_path);
	for (size_t i = 0; cands && cands[i]; i++) {
		struct kn_buf text = KN_BUF_INIT;
		kn_error *e = NULL;
		int r;

		if (kn_read_file(cands[i], 16 << 20, &text, &e) < 0) {
			bool missing = e->code == ENOENT || e->code == ENOTDIR;

			kn_buf_release(&text);
			if (missing) {
				kn_error_free(e);
				continue;
			}
			kn_error_propagate(err, e);
			return -1;
		}
		r = df_ignore_parse(text.buf, text.len, &b->ignore, err);
		kn_buf_release(&text);
		if (r < 0)
			return kn_error_wrap(err, "%s", cands[i]);
		return 0;
	}
	return 0;
}
