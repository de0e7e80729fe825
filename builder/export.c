/* kiln builder: the exporters of `kiln build -o` (buildx's local, tar, oci and docker types).
 * Files are the final image's layers applied in order; archives reuse layers/archive.c. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "builder/build-internal.h"

void bld_result_release(struct bld_result *r)
{
	if (!r)
		return;
	store_desc_release(&r->manifest);
	free(r->config_digest);
	memset(r, 0, sizeof(*r));
}

/* Applies the image's layers, bottom first, into the existing directory dir (flattened form). */
static int flatten(struct bld *b, const struct image_config *config, const struct store_desc *layers,
		   size_t n, const char *dir, kn_error **err)
{
	for (size_t i = 0; i < n; i++) {
		struct layer_apply_opts ao = { 0 };
		_cleanup_close_ int fd = -1;

		ao.expected_digest = layers[i].digest;
		ao.expected_diff_id = config->diff_ids ? config->diff_ids[i] : NULL;
		if (store_blob_open(b->store, layers[i].digest, &fd, NULL, err) < 0 ||
		    layer_apply_fd(fd, dir, &ao, NULL, err) < 0)
			return kn_error_wrap(err, "cannot unpack layer %s into '%s'", layers[i].digest, dir);
	}
	return 0;
}

/*
 * The output file of an archive exporter: stdout for "-", else a temp file beside dest that
 * out_commit() renames over it once complete (a failed export leaves dest as it was).
 */
struct out_file {
	int fd;
	char *tmp;
	const char *dest;
};

static int out_open(const char *dest, struct out_file *o, kn_error **err)
{
	_cleanup_free_ char *dup = NULL;

	o->dest = dest;
	o->tmp = NULL;
	o->fd = -1;
	if (!strcmp(dest, "-")) {
		o->fd = STDOUT_FILENO;
		return 0;
	}
	dup = xstrdup(dest);
	o->tmp = xasprintf("%s/.%s.kiln-XXXXXX", dirname(dup), strrchr(dest, '/') ? strrchr(dest, '/') + 1 : dest);
	o->fd = mkostemp(o->tmp, O_CLOEXEC);
	if (o->fd < 0) {
		int r = kn_error_errno(err, "cannot create '%s'", dest);

		free(o->tmp);
		o->tmp = NULL;
		return r;
	}
	(void)fchmod(o->fd, 0644);
	return 0;
}

static void out_abort(struct out_file *o)
{
	if (!o->tmp)
		return;
	close(o->fd);
	unlink(o->tmp);
	free(o->tmp);
	o->tmp = NULL;
}

static int out_commit(struct out_file *o, kn_error **err)
{
	int r = 0;

	if (!o->tmp)
		return 0;
	if (fsync(o->fd) < 0 || close(o->fd) < 0) {
		r = kn_error_errno(err, "cannot write '%s'", o->dest);
		unlink(o->tmp);
	} else if (rename(o->tmp, o->dest) < 0) {
		r = kn_error_errno(err, "cannot write '%s'", o->dest);
		unlink(o->tmp);
	}
	free(o->tmp);
	o->tmp = NULL;
	return r;
}

static int export_local(struct bld *b, const struct bld_export *e, const struct image_config *config,
			const struct store_desc *layers, size_t n, kn_error **err)
{
	if (kn_mkdir_p(e->dest, 0755, err) < 0)
		return kn_error_wrap(err, "local exporter");
	return flatten(b, config, layers, n, e->dest, err);
}

static int export_tar(struct bld *b, const struct bld_export *e, const struct image_config *config,
		      const struct store_desc *layers, size_t n, kn_error **err)
{
	const char *tmpdir = store_tmpdir(b->store, err);
	_cleanup_free_ char *dir = NULL;
	struct out_file o;
	int r = -1;

	if (!tmpdir)
		return -1;
	dir = xasprintf("%s/export-%u", tmpdir, __atomic_fetch_add(&b->step_seq, 1, __ATOMIC_RELAXED));
	if (mkdir(dir, 0755) < 0)
		return kn_error_errno(err, "cannot create '%s'", dir);
	if (flatten(b, config, layers, n, dir, err) < 0)
		goto out;
	if (out_open(e->dest, &o, err) < 0)
		goto out;
	if (layer_tar_dir(dir, &b->lopts, o.fd, err) < 0) {
		out_abort(&o);
		goto out;
	}
	r = out_commit(&o, err);
out:
	(void)kn_rm_rf(dir, NULL);
	return r;
}

static int export_archive(struct bld *b, const struct bld_export *e, const struct store_desc *mdesc,
			  kn_error **err)
{
	struct kn_strv names = KN_STRV_INIT;
	struct out_file o;
	int r = -1;

	for (size_t i = 0; e->names && e->names[i]; i++) {
		char *norm = NULL;

		if (store_ref_normalize(e->names[i], &norm, err) < 0) {
			kn_error_wrap(err, "invalid image name '%s'", e->names[i]);
			goto out;
		}
		kn_strv_push_owned(&names, norm);
	}
	if (out_open(e->dest, &o, err) < 0)
		goto out;
	if (store_archive_save_manifest(b->store, mdesc, names.v,
					e->type == BLD_EXPORT_OCI ? STORE_ARCHIVE_OCI : STORE_ARCHIVE_DOCKER, o.fd,
					err) < 0) {
		out_abort(&o);
		goto out;
	}
	r = out_commit(&o, err);
out:
	kn_strv_release(&names);
	return r;
}

static const char *const export_names[] = {
	[BLD_EXPORT_LOCAL] = "local",
	[BLD_EXPORT_TAR] = "tar",
	[BLD_EXPORT_OCI] = "oci",
	[BLD_EXPORT_DOCKER] = "docker",
};

int bld_export_run(struct bld *b, const struct image_config *config, const struct store_desc *layers,
		   size_t n, const struct store_desc *mdesc, kn_error **err)
{
	for (size_t i = 0; i < b->o->n_exports; i++) {
		const struct bld_export *e = &b->o->exports[i];
		int r;

		bld_info(b, "exporting to %s: %s", export_names[e->type],
			 strcmp(e->dest, "-") ? e->dest : "stdout");
		switch (e->type) {
		case BLD_EXPORT_LOCAL:
			r = export_local(b, e, config, layers, n, err);
			break;
		case BLD_EXPORT_TAR:
			r = export_tar(b, e, config, layers, n, err);
			break;
		default:
			r = export_archive(b, e, mdesc, err);
			break;
		}
		if (r < 0)
			return kn_error_wrap(err, "%s exporter", export_names[e->type]);
	}
	return 0;
}

bool bld_export_needs_image(const struct bld_options *o)
{
	for (size_t i = 0; i < o->n_exports; i++)
		if (o->exports[i].type == BLD_EXPORT_OCI || o->exports[i].type == BLD_EXPORT_DOCKER)
			return true;
	return false;
}
