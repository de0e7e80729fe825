/* kiln rmi: untag and remove images from the local store (like docker rmi). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "layers/layers.h"

/* Returns the key of a cache entry whose "images" list names the image, or NULL. Owned. */
static char *cache_user(struct store *s, const struct store_image *img, const struct kn_strv *names)
{
	char **keys = NULL;
	char *found = NULL;

	if (store_cache_list(s, &keys, NULL) < 0)
		return NULL;
	for (size_t i = 0; keys[i] && !found; i++) {
		_cleanup_free_ char *text = NULL;
		json_t *j, *e;
		size_t k;

		if (store_cache_get(s, keys[i], &text, NULL) < 0)
			continue;
		j = json_loads(text, 0, NULL);
		json_array_foreach(json_object_get(j, "images"), k, e) {
			_cleanup_free_ char *norm = NULL;
			const char *v = json_string_value(e);

			if (!v)
				continue;
			if (!strcmp(v, img->id) || !strcmp(v, store_digest_hex(img->id)) ||
			    (store_ref_normalize(v, &norm, NULL) == 0 && kn_strv_contains(names, norm))) {
				found = xstrdup(keys[i]);
				break;
			}
		}
		json_decref(j);
	}
	kn_strv_free(keys);
	return found;
}

static int remove_one(struct store *s, const char *arg, bool force, kn_error **err)
{
	_cleanup_(store_image_freep) struct store_image *img = NULL;
	struct store_ref *refs = NULL;
	struct kn_strv names = KN_STRV_INIT, digests = KN_STRV_INIT;
	_cleanup_free_ char *user = NULL;
	size_t n = 0;
	int r = -1;

	if (store_image_resolve(s, arg, &img, err) < 0 || store_ref_list(s, &refs, &n, err) < 0)
		return -1;
	/* Every index entry that is this image (same config digest). */
	for (size_t i = 0; i < n; i++) {
		struct store_image *other = NULL;
		const char *key = refs[i].name ? refs[i].name : refs[i].desc.digest;

		if (store_image_resolve(s, key, &other, NULL) < 0)
			continue;
		if (!strcmp(other->id, img->id)) {
			if (refs[i].name)
				kn_strv_push(&names, refs[i].name);
			else if (!kn_strv_contains(&digests, refs[i].desc.digest))
				kn_strv_push(&digests, refs[i].desc.digest);
		}
		store_image_free(other);
	}
	user = cache_user(s, img, &names);
	if (user && !force) {
		kn_error_set(err, EBUSY,
			     "image '%s' is used by build cache entry '%.12s' (use -f to remove it anyway)",
			     arg, user);
		goto out;
	}
	if (img->name && !strchr(img->name, '@') && names.n > 1) {
		/* A name with other names left: untag only. */
		_cleanup_free_ char *fam = store_ref_familiar(img->name);

		if (store_ref_delete(s, img->name, err) < 0)
			goto out;
		printf("Untagged: %s\n", fam);
		r = 0;
		goto out;
	}
	if (!img->name && names.n > 1 && !force) {
		kn_error_set(err, EBUSY,
			     "unable to delete '%.12s' (must be forced): image is referenced in %zu names",
			     store_digest_hex(img->id), names.n);
		goto out;
	}
	for (size_t i = 0; i < names.n; i++) {
		_cleanup_free_ char *fam = store_ref_familiar(names.v[i]);

		if (store_ref_delete(s, names.v[i], err) < 0)
			goto out;
		printf("Untagged: %s\n", fam);
	}
	for (size_t i = 0; i < n; i++) {
		/* Untagged entries and the manifests of the named ones go too. */
		if (!refs[i].name && kn_strv_contains(&digests, refs[i].desc.digest) &&
		    store_ref_delete_digest(s, refs[i].desc.digest, err) < 0)
			goto out;
	}
	printf("Deleted: %s\n", img->id);
	r = 0;
out:
	store_refs_free(refs, n);
	kn_strv_release(&names);
	kn_strv_release(&digests);
	return r;
}

int cmd_rmi(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "force", no_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		CLI_OPT_ROOT_ENTRY,
		{ NULL, 0, NULL, 0 },
	};
	_cleanup_(store_freep) struct store *s = NULL;
	kn_error *err = NULL;
	bool force = false;
	int c, rc = CLI_EXIT_OK;

	while ((c = cli_getopt("rmi", argc, argv, ":hf", opts)) != -1) {
		switch (c) {
		case 'h':
			fputs("Usage: kiln rmi [OPTIONS] IMAGE...\n"
			      "\n"
			      "Untag images, and remove them when no name is left.\n"
			      "\n"
			      "Options:\n"
			      "  -f, --force      remove an image with several names, or one a build cache\n"
			      "                   entry uses\n"
			      "      --root DIR   local image store\n"
			      "  -h, --help       show this help\n",
			      stdout);
			return CLI_EXIT_OK;
		case 'f':
			force = true;
			break;
		case CLI_OPT_ROOT:
			cli_set_root(optarg);
			break;
		default:
			return CLI_EXIT_USAGE;
		}
	}
	if (optind >= argc)
		return cli_usage_error("rmi", "expected at least one IMAGE");
	if (store_open(cli_root(), STORE_WRITE, &s, &err) < 0)
		return cli_fail(err);
	for (int i = optind; i < argc; i++) {
		if (remove_one(s, argv[i], force, &err) < 0) {
			cli_fail(err);
			err = NULL;
			rc = CLI_EXIT_FAIL;
		}
	}
	return rc;
}
