/* kiln builder: named contexts (--build-context NAME=SOURCE, as docker buildx): FROM NAME,
 * COPY --from=NAME and RUN --mount from=NAME take a directory, another image reference or an
 * image of an OCI layout directory instead of the image NAME. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "builder/build-internal.h"

/* The SOURCE of the named context name, or NULL (names compare as written, then normalized). */
static const char *find_context(const struct bld *b, const char *name)
{
	_cleanup_free_ char *norm = NULL;

	for (size_t i = 0; b->o->build_contexts && b->o->build_contexts[i]; i++) {
		const char *c = b->o->build_contexts[i], *eq = strchr(c, '=');

		if (eq && (size_t)(eq - c) == strlen(name) && !strncmp(c, name, (size_t)(eq - c)))
			return eq + 1;
	}
	if (store_ref_normalize(name, &norm, NULL) < 0)
		return NULL;
	for (size_t i = 0; b->o->build_contexts && b->o->build_contexts[i]; i++) {
		const char *c = b->o->build_contexts[i], *eq = strchr(c, '=');
		_cleanup_free_ char *key = eq ? xstrndup(c, (size_t)(eq - c)) : NULL, *kn = NULL;

		if (key && store_ref_normalize(key, &kn, NULL) == 0 && !strcmp(kn, norm))
			return eq + 1;
	}
	return NULL;
}

/* A directory as an image: one layer of its files, a fresh config for the host. */
static int image_from_dir(struct bld *b, const char *dir, struct store_image **ret, kn_error **err)
{
	_cleanup_(image_config_freep) struct image_config *c = image_config_new();
	struct layer_result lr = { 0 };
	struct store_desc md = { 0 };
	int r;

	if (layer_from_dir(b->store, dir, &b->lopts, &lr, err) < 0)
		return -1;
	image_config_add_layer(c, lr.diff_id);
	if (b->have_epoch) {
		free(c->created);
		c->created = bld_now(b);
	}
	r = store_image_put(b->store, c, &lr.desc, 1, IMAGE_FORMAT_OCI, &md, NULL, err);
	layer_result_release(&lr);
	if (r < 0)
		return -1;
	r = store_image_load(b->store, &md, NULL, ret, err);
	store_desc_release(&md);
	return r;
}

/* LAYOUT/blobs/<alg>/<hex> of a checked digest. Owned. */
static char *layout_blob_path(const char *layout, const char *digest)
{
	return xasprintf("%s/blobs/%.*s/%s", layout, (int)(strchr(digest, ':') - digest), digest,
			 store_digest_hex(digest));
}

/* Copies the blob d of the OCI layout at layout into the store (digest checked), and what it refers to. */
static int copy_layout_blob(struct bld *b, const char *layout, const struct store_desc *d, int depth,
			    kn_error **err)
{
	_cleanup_free_ char *path = NULL;
	_cleanup_close_ int fd = -1;
	struct store_blob_writer *w = NULL;
	struct kn_buf json = KN_BUF_INIT;
	char buf[65536];
	ssize_t n;
	bool is_json = d->media_type && strstr(d->media_type, "json");
	int r = -1;

	if (depth > 4)
		return kn_error_set(err, ELOOP, "oci-layout '%s': indexes nested too deep", layout);
	if (store_digest_check(d->digest, err) < 0)
		return -1;
	path = layout_blob_path(layout, d->digest);
	if (!store_blob_exists(b->store, d->digest) || is_json) {
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return kn_error_errno(err, "oci-layout '%s': cannot open blob %s", layout, d->digest);
		if (!store_blob_exists(b->store, d->digest) && store_blob_writer_new(b->store, &w, err) < 0)
			return -1;
		for (;;) {
			n = read(fd, buf, sizeof(buf));
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0) {
				kn_error_errno(err, "oci-layout '%s': cannot read blob %s", layout, d->digest);
				goto out;
			}
			if (n == 0)
				break;
			if (w && store_blob_writer_write(w, buf, (size_t)n, err) < 0)
				goto out;
			if (is_json) {
				if (json.len + (size_t)n > STORE_JSON_MAX) {
					kn_error_set(err, EFBIG, "oci-layout '%s': blob %s is too large", layout, d->digest);
					goto out;
				}
				kn_buf_add(&json, buf, (size_t)n);
			}
		}
		if (w) {
			struct store_blob_writer *tw = steal_ptr(&w);

			if (store_blob_writer_commit(tw, d->digest, NULL, NULL, err) < 0)
				goto out;
		}
	}
	if (is_json && strstr(d->media_type, "manifest") && !strstr(d->media_type, "list")) {
		struct image_manifest m = { 0 };

		if (image_manifest_parse(json.buf, json.len, &m, err) < 0)
			goto out;
		r = copy_layout_blob(b, layout, &m.config, depth + 1, err);
		for (size_t i = 0; r == 0 && i < m.n_layers; i++)
			r = copy_layout_blob(b, layout, &m.layers[i], depth + 1, err);
		image_manifest_release(&m);
		goto out;
	}
	if (is_json && (strstr(d->media_type, "index") || strstr(d->media_type, "list"))) {
		struct image_index ix = { 0 };

		if (image_index_parse(json.buf, json.len, &ix, err) < 0)
			goto out;
		r = 0;
		for (size_t i = 0; r == 0 && i < ix.n_manifests; i++) {
			_cleanup_free_ char *p = NULL;

			if (store_digest_check(ix.manifests[i].digest, err) < 0) {
				r = -1;
				break;
			}
			p = layout_blob_path(layout, ix.manifests[i].digest);
			/* Platforms the layout does not hold are left out, as in a partial pull. */
			if (access(p, F_OK) == 0)
				r = copy_layout_blob(b, layout, &ix.manifests[i], depth + 1, err);
		}
		image_index_release(&ix);
		goto out;
	}
	r = 0;
out:
	store_blob_writer_abort(w);
	kn_buf_release(&json);
	return r;
}

/* oci-layout://DIR[:TAG] or DIR@DIGEST: the image the layout's index names, copied into the store. */
static int image_from_layout(struct bld *b, const char *spec, struct store_image **ret, kn_error **err)
{
	_cleanup_free_ char *dir = xstrdup(spec), *ixpath = NULL;
	const char *tag = "latest", *digest = NULL;
	struct kn_buf text = KN_BUF_INIT;
	struct image_index ix = { 0 };
	const struct store_desc *pick = NULL;
	char *at = strrchr(dir, '@'), *colon = strrchr(dir, ':');
	int r = -1;

	if (at) {
		*at = 0;
		digest = at + 1;
	} else if (colon && !strchr(colon, '/')) {
		*colon = 0;
		tag = colon + 1;
	}
	ixpath = kn_path_join(dir, "index.json");
	if (kn_read_file(ixpath, STORE_JSON_MAX, &text, err) < 0 ||
	    image_index_parse(text.buf, text.len, &ix, err) < 0) {
		kn_error_wrap(err, "oci-layout '%s'", dir);
		goto out;
	}
	for (size_t i = 0; i < ix.n_manifests && !pick; i++) {
		const struct store_desc *d = &ix.manifests[i];
		json_t *name = d->annotations ? json_object_get(d->annotations, STORE_ANNOT_REF_NAME) : NULL;
		const char *n = name ? json_string_value(name) : NULL;

		if (digest ? !strcmp(d->digest, digest)
			   : n && (!strcmp(n, tag) || (strrchr(n, ':') && !strcmp(strrchr(n, ':') + 1, tag))))
			pick = d;
	}
	if (!pick && !digest && !colon && ix.n_manifests == 1)
		pick = &ix.manifests[0];
	if (!pick) {
		kn_error_set(err, ENOENT, "oci-layout '%s': no image %s%s", dir, digest ? "" : "tagged ",
			     digest ? digest : tag);
		goto out;
	}
	if (copy_layout_blob(b, dir, pick, 0, err) < 0 || store_image_load(b->store, pick, NULL, ret, err) < 0) {
		kn_error_wrap(err, "oci-layout '%s'", dir);
		goto out;
	}
	r = 0;
out:
	image_index_release(&ix);
	kn_buf_release(&text);
	return r;
}

int bld_named_context(struct bld *b, const char *ref, struct store_image **ret_img, const char **ret_alias,
		      kn_error **err)
{
	const char *src = find_context(b, ref);

	if (!src)
		return 0;
	if (!strncmp(src, "docker-image://", 15)) {
		*ret_alias = src + 15;
		return 2;
	}
	if (!strncmp(src, "oci-layout://", 13)) {
		bld_info(b, "loading %s from %s", ref, src);
		return image_from_layout(b, src + 13, ret_img, err) < 0 ? -1 : 1;
	}
	if (strstr(src, "://"))
		return kn_error_set(err, EINVAL, "--build-context %s=%s: unsupported source (a directory, docker-image:// "
						 "or oci-layout://)", ref, src);
	{
		_cleanup_free_ char *real = realpath(src, NULL);

		if (!real)
			return kn_error_errno(err, "--build-context %s: directory '%s'", ref, src);
		return image_from_dir(b, real, ret_img, err) < 0 ? -1 : 1;
	}
}
