/*
 * kiln layers: snapshots (one unpacked layer per chain ID, in overlay form) and overlay mounts.
 *
 * A snapshot is unpacked into the store handle's private temp dir and renamed into
 * ROOT/snapshots/<hex>. rename(2) of a directory onto a non-empty directory fails, so when two
 * builds unpack the same layer at once exactly one copy wins and the other is deleted: readers
 * only ever see complete snapshots, without any lock. Garbage collection holds ROOT/lock
 * exclusively, which excludes every STORE_WRITE handle, so a snapshot cannot vanish while a
 * build prepares it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/userns.h"
#include "layers/layer-internal.h"

static bool is_dir(const char *p)
{
	struct stat st;

	return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int snapshots_dir(struct store *s, kn_error **err)
{
	_cleanup_free_ char *d = kn_path_join(store_root(s), "snapshots");

	return kn_mkdir_p(d, 0700, err);
}

/* Renames tmp to dst; if dst appeared meanwhile (another build), drops tmp. */
static int publish(const char *tmp, const char *dst, kn_error **err)
{
	_cleanup_free_ char *parent = NULL;
	const char *slash;

	if (rename(tmp, dst) < 0) {
		if ((errno == ENOTEMPTY || errno == EEXIST) && is_dir(dst))
			return kn_rm_rf(tmp, err);
		return kn_error_errno(err, "cannot move snapshot into place at '%s'", dst);
	}
	slash = strrchr(dst, '/');
	parent = slash ? xstrndup(dst, (size_t)(slash - dst)) : xstrdup(".");
	return kn_fsync_dir(parent, err);
}

static int unpack_snapshot(struct store *s, const struct store_desc *layer, const char *diff_id,
			   const char *dst, kn_error **err)
{
	struct layer_apply_opts ao = {
		.flags = LAYER_APPLY_OVERLAY,
		.expected_digest = layer->digest,
		.expected_diff_id = diff_id,
	};
	_cleanup_free_ char *tmp = NULL;
	_cleanup_close_ int fd = -1;
	const char *tmpdir;
	int64_t size;

	tmpdir = store_tmpdir(s, err);
	if (!tmpdir)
		return -1;
	tmp = xasprintf("%s/snap-%s-XXXXXX", tmpdir, store_digest_hex(diff_id));
	if (!mkdtemp(tmp))
		return kn_error_errno(err, "cannot create a snapshot temp dir in '%s'", tmpdir);
	/* The snapshot's root is the container's "/" when it is the top layer. */
	if (chmod(tmp, 0755) < 0) {
		kn_error_errno(err, "cannot set the mode of '%s'", tmp);
		goto fail;
	}
	if (store_blob_open(s, layer->digest, &fd, &size, err) < 0)
		goto fail;
	if (layer_apply_fd(fd, tmp, &ao, NULL, err) < 0) {
		kn_error_wrap(err, "layer '%s'", layer->digest);
		goto fail;
	}
	if (syncfs(fd) < 0) {
		kn_error_errno(err, "cannot sync snapshot '%s'", tmp);
		goto fail;
	}
	return publish(tmp, dst, err);
fail:
	(void)kn_rm_rf(tmp, NULL);
	return -1;
}

int snapshot_prepare(struct store *s, const struct store_desc *layers, char *const *diff_ids,
		     size_t n, char ***ret_lowerdirs, char **ret_chain_id, kn_error **err)
{
	struct kn_strv paths = KN_STRV_INIT;
	_cleanup_free_ char *chain = NULL;

	if (n && snapshots_dir(s, err) < 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		char *next;
		char *path;

		if (store_digest_check(diff_ids[i], err) < 0 ||
		    store_digest_check(layers[i].digest, err) < 0)
			goto fail;
		next = store_chain_id(chain, diff_ids[i]);
		free(chain);
		chain = next;
		path = store_snapshot_path(s, chain, err);
		if (!path)
			goto fail;
		kn_strv_push_owned(&paths, path);
		if (is_dir(path))
			continue;
		if (unpack_snapshot(s, &layers[i], diff_ids[i], path, err) < 0)
			goto fail;
	}
	/* overlay's lowerdir= is top-first. */
	for (size_t i = 0; i < paths.n / 2; i++) {
		char *t = paths.v[i];
		paths.v[i] = paths.v[paths.n - 1 - i];
		paths.v[paths.n - 1 - i] = t;
	}
	*ret_lowerdirs = kn_strv_detach(&paths);
	if (ret_chain_id)
		*ret_chain_id = steal_ptr(&chain);
	return 0;
fail:
	kn_strv_release(&paths);
	return -1;
}

int snapshot_commit(struct store *s, const char *chain_id, const char *dir, kn_error **err)
{
	_cleanup_free_ char *dst = NULL;

	if (snapshots_dir(s, err) < 0)
		return -1;
	dst = store_snapshot_path(s, chain_id, err);
	if (!dst)
		return -1;
	if (is_dir(dst))
		return kn_rm_rf(dir, err);
	/*
	 * The root's mode is no part of a layer; a mkdtemp()'d upper dir is 0700, which would
	 * make "/" unreadable for non-root users when this snapshot is the top lowerdir.
	 */
	if (chmod(dir, 0755) < 0)
		return kn_error_errno(err, "cannot set the mode of '%s'", dir);
	return publish(dir, dst, err);
}

char *snapshot_lookup(struct store *s, const char *chain_id, kn_error **err)
{
	char *p = store_snapshot_path(s, chain_id, err);

	if (!p)
		return NULL;
	if (!is_dir(p)) {
		kn_error_set(err, ENOENT, "no snapshot for chain ID '%s'", chain_id);
		free(p);
		return NULL;
	}
	return p;
}

/* ---- overlay mounts ------------------------------------------------------------------------ */

static int fsconfig_str(int fd, const char *key, const char *val, kn_error **err)
{
	if (fsconfig(fd, FSCONFIG_SET_STRING, key, val, 0) < 0)
		return kn_error_errno(err, "overlay option '%s=%s'", key, val);
	return 0;
}

static int mount_new_api(const char *target, char *const *lowerdirs, const char *upperdir,
			 const char *workdir, kn_error **err)
{
	_cleanup_close_ int fsfd = -1, mfd = -1;
	/* A user namespace (rootless) cannot write trusted.* xattrs: overlay uses user.* ones. */
	bool root = geteuid() == 0 && !kn_userns_active();

	fsfd = fsopen("overlay", FSOPEN_CLOEXEC);
	if (fsfd < 0)
		return kn_error_errno(err, "fsopen overlay");
	for (char *const *l = lowerdirs; *l; l++)
		if (fsconfig_str(fsfd, "lowerdir+", *l, err) < 0)
			return -1;
	if (upperdir && (fsconfig_str(fsfd, "upperdir", upperdir, err) < 0 ||
			 fsconfig_str(fsfd, "workdir", workdir, err) < 0))
		return -1;
	/* userxattr forbids following redirects ("off" still follows): "nofollow" there. */
	if (fsconfig_str(fsfd, "redirect_dir", root ? "off" : "nofollow", err) < 0)
		return -1;
	if (fsconfig(fsfd, FSCONFIG_SET_STRING, "metacopy", "off", 0) < 0 && errno != EINVAL)
		return kn_error_errno(err, "overlay option 'metacopy=off'");
	if (!root && fsconfig(fsfd, FSCONFIG_SET_FLAG, "userxattr", NULL, 0) < 0)
		return kn_error_errno(err, "overlay option 'userxattr'");
	if (fsconfig(fsfd, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
		return kn_error_errno(err, "cannot create the overlay on '%s'", target);
	mfd = fsmount(fsfd, FSMOUNT_CLOEXEC, 0);
	if (mfd < 0)
		return kn_error_errno(err, "cannot mount the overlay on '%s'", target);
	if (move_mount(mfd, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH) < 0)
		return kn_error_errno(err, "cannot attach the overlay on '%s'", target);
	return 0;
}

static int mount_old_api(const char *target, char *const *lowerdirs, const char *upperdir,
			 const char *workdir, kn_error **err)
{
	struct kn_buf o = KN_BUF_INIT;
	int r;

	kn_buf_adds(&o, "lowerdir=");
	for (char *const *l = lowerdirs; *l; l++) {
		if (strpbrk(*l, ":,\\")) {
			kn_buf_release(&o);
			return kn_error_set(err, EINVAL, "overlay lowerdir '%s' has ':' or ','", *l);
		}
		if (l != lowerdirs)
			kn_buf_addch(&o, ':');
		kn_buf_adds(&o, *l);
	}
	if (upperdir)
		kn_buf_addf(&o, ",upperdir=%s,workdir=%s", upperdir, workdir);
	if (geteuid() != 0 || kn_userns_active())
		kn_buf_adds(&o, ",redirect_dir=nofollow,userxattr");
	else
		kn_buf_adds(&o, ",redirect_dir=off");
	if (o.len >= (size_t)sysconf(_SC_PAGESIZE)) {
		kn_buf_release(&o);
		return kn_error_set(err, E2BIG, "too many overlay layers for mount(2) options");
	}
	r = mount("overlay", target, "overlay", 0, o.buf);
	kn_buf_release(&o);
	if (r < 0)
		return kn_error_errno(err, "cannot mount the overlay on '%s'", target);
	return 0;
}

int layer_overlay_mount(const char *target, char *const *lowerdirs, const char *upperdir,
			const char *workdir, kn_error **err)
{
	kn_error *local = NULL;
	size_t n = kn_strv_len(lowerdirs);

	if (!n)
		return kn_error_set(err, EINVAL, "an overlay needs at least one lower directory");
	if (n > 500)
		return kn_error_set(err, E2BIG, "%zu layers: overlayfs stacks at most 500", n);
	if (!upperdir != !workdir)
		return kn_error_set(err, EINVAL, "upperdir and workdir go together");
	if (mount_new_api(target, lowerdirs, upperdir, workdir, &local) == 0)
		return 0;
	/* Kernels before 6.8 have no "lowerdir+"; before 5.2 no fsopen at all. */
	if (local->code == ENOSYS || local->code == EINVAL) {
		kn_error_free(local);
		return mount_old_api(target, lowerdirs, upperdir, workdir, err);
	}
	kn_error_propagate(err, local);
	return -1;
}
