/*
 * layer-tool: drives the layer API from tests and bench/layers (like git's test-tool; not
 * installed, not part of the kiln CLI).
 *
 *   layer-tool create ROOT DIR [--overlay] [--lower DIR]... [-c gzip|zstd|none] [-l LEVEL]
 *                     [-t THREADS] [--parents-from-lower] [--to-file]
 *                     (--to-file: ROOT is a file to write the layer to, no store, no fsync)
 *   layer-tool tar ROOT FILE [-c ...] [-l ...]        re-writes a tar (as kiln import does)
 *   layer-tool apply FILE TARGET [--overlay] [--max-size N] [--max-entries N] [--digest D]
 *                    [--diff-id D] [--walk]           (--walk: the no-openat2 fallback)
 *   layer-tool prepare ROOT IMAGE                     snapshot_prepare: prints the lowerdirs
 *   layer-tool mount TARGET UPPER WORK LOWER...       layer_overlay_mount (top-first lowers)
 *   layer-tool image ROOT NAME [--overlay] DIR...      an image with one layer per DIR (bottom
 *                                                     first; --overlay: DIRs are upper dirs)
 *
 * create/tar print "digest", "diff_id", "size", "diff_size", "entries", "media_type" and "blob"
 * lines. SOURCE_DATE_EPOCH is honoured. Exit 1 with "layer-tool: <error>" on failure.
 */
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "layers/layer-internal.h"

static int fail(kn_error *e)
{
	char *m = kn_error_format(e);

	fprintf(stderr, "layer-tool: %s\n", m);
	free(m);
	kn_error_free(e);
	return 1;
}

static void print_result(struct store *s, const struct layer_result *r)
{
	char *p = store_blob_path(s, r->desc.digest, NULL);

	printf("digest %s\ndiff_id %s\nsize %lld\ndiff_size %lld\nentries %lld\nmedia_type %s\nblob %s\n",
	       r->desc.digest, r->diff_id, (long long)r->desc.size, (long long)r->diff_size,
	       (long long)r->n_entries, r->desc.media_type, p ? p : "");
	free(p);
}

static int out_fd(void *ctx, const void *data, size_t len, kn_error **err)
{
	return kn_write_all(*(int *)ctx, data, len, err);
}

/* --to-file: the same pipeline into a plain file, no store (no fsync): for bench/layers. */
static int create_to_file(const char *file, const char *dir, const struct layer_write_opts *wo,
			  bool overlay)
{
	struct layer_source src = { .dir = dir, .overlay = overlay, .tar_fd = -1 };
	struct layer_result res = { 0 };
	kn_error *err = NULL;
	int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	if (fd < 0) {
		kn_error_errno(&err, "cannot create '%s'", file);
		return fail(err);
	}
	if (layer_write(&src, wo, out_fd, &fd, &res, &err) < 0) {
		close(fd);
		return fail(err);
	}
	close(fd);
	printf("digest %s\ndiff_id %s\nsize %lld\ndiff_size %lld\nentries %lld\n", res.desc.digest,
	       res.diff_id, (long long)res.desc.size, (long long)res.diff_size,
	       (long long)res.n_entries);
	layer_result_release(&res);
	return 0;
}

static int cmd_create(int argc, char **argv, bool from_tar)
{
	static const struct option opts[] = {
		{ "compression", required_argument, NULL, 'c' },
		{ "level", required_argument, NULL, 'l' },
		{ "threads", required_argument, NULL, 't' },
		{ "overlay", no_argument, NULL, 'o' },
		{ "lower", required_argument, NULL, 'L' },
		{ "parents-from-lower", no_argument, NULL, 'P' },
		{ "to-file", no_argument, NULL, 'F' },
		{ NULL, 0, NULL, 0 },
	};
	struct layer_write_opts wo = LAYER_WRITE_OPTS_INIT;
	bool to_file = false;
	struct kn_strv lowers = KN_STRV_INIT;
	struct layer_result res = { 0 };
	struct store *s = NULL;
	kn_error *err = NULL;
	bool overlay = false;
	int c, r;

	optind = 1;
	while ((c = getopt_long(argc, argv, "c:l:t:", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			if (layer_compression_parse(optarg, &wo.compression, &err) < 0)
				return fail(err);
			break;
		case 'l':
			wo.level = (int)strtol(optarg, NULL, 10);
			break;
		case 't':
			wo.threads = (int)strtol(optarg, NULL, 10);
			break;
		case 'o':
			overlay = true;
			break;
		case 'L':
			kn_strv_push(&lowers, optarg);
			break;
		case 'P':
			wo.flags |= LAYER_PARENTS_FROM_LOWER;
			break;
		case 'F':
			to_file = true;
			break;
		default:
			return 2;
		}
	}
	if (argc - optind != 2) {
		fprintf(stderr, "usage: layer-tool create|tar ROOT DIR|FILE [options]\n");
		return 2;
	}
	if (layer_write_opts_from_env(&wo, &err) < 0)
		return fail(err);
	if (to_file)
		return create_to_file(argv[optind], argv[optind + 1], &wo, overlay);
	if (store_open(argv[optind], STORE_WRITE, &s, &err) < 0)
		return fail(err);
	if (from_tar) {
		int fd = open(argv[optind + 1], O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			kn_error_errno(&err, "cannot open '%s'", argv[optind + 1]);
			store_free(s);
			return fail(err);
		}
		r = layer_from_tar(s, fd, &wo, &res, &err);
		close(fd);
	} else if (overlay) {
		r = layer_diff_overlay(s, argv[optind + 1], lowers.v, &wo, &res, &err);
	} else {
		r = layer_from_dir(s, argv[optind + 1], &wo, &res, &err);
	}
	kn_strv_release(&lowers);
	if (r < 0) {
		store_free(s);
		return fail(err);
	}
	print_result(s, &res);
	layer_result_release(&res);
	store_free(s);
	return 0;
}

static int cmd_apply(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "overlay", no_argument, NULL, 'o' },
		{ "max-size", required_argument, NULL, 'm' },
		{ "max-entries", required_argument, NULL, 'n' },
		{ "digest", required_argument, NULL, 'd' },
		{ "diff-id", required_argument, NULL, 'D' },
		{ "walk", no_argument, NULL, 'w' },
		{ NULL, 0, NULL, 0 },
	};
	struct layer_apply_opts ao = { 0 };
	kn_error *err = NULL;
	char *diff_id = NULL;
	int c, fd;

	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'o':
			ao.flags |= LAYER_APPLY_OVERLAY;
			break;
		case 'm':
			ao.max_size = strtoll(optarg, NULL, 10);
			break;
		case 'n':
			ao.max_entries = strtoll(optarg, NULL, 10);
			break;
		case 'd':
			ao.expected_digest = optarg;
			break;
		case 'D':
			ao.expected_diff_id = optarg;
			break;
		case 'w':
			layer_apply_force_walk = true;
			break;
		default:
			return 2;
		}
	}
	if (argc - optind != 2) {
		fprintf(stderr, "usage: layer-tool apply FILE TARGET [options]\n");
		return 2;
	}
	fd = !strcmp(argv[optind], "-") ? dup(0) : open(argv[optind], O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		kn_error_errno(&err, "cannot open '%s'", argv[optind]);
		return fail(err);
	}
	if (layer_apply_fd(fd, argv[optind + 1], &ao, &diff_id, &err) < 0) {
		close(fd);
		return fail(err);
	}
	close(fd);
	printf("diff_id %s\n", diff_id);
	free(diff_id);
	return 0;
}

static int cmd_prepare(int argc, char **argv)
{
	struct store *s = NULL;
	struct store_image *img = NULL;
	kn_error *err = NULL;
	char **lowers = NULL;
	char *chain = NULL;

	if (argc != 3) {
		fprintf(stderr, "usage: layer-tool prepare ROOT IMAGE\n");
		return 2;
	}
	if (store_open(argv[1], STORE_WRITE, &s, &err) < 0)
		return fail(err);
	if (store_image_resolve(s, argv[2], &img, &err) < 0 ||
	    snapshot_prepare(s, img->manifest.layers, img->config->diff_ids, img->manifest.n_layers,
			     &lowers, &chain, &err) < 0) {
		store_image_free(img);
		store_free(s);
		return fail(err);
	}
	printf("chain_id %s\n", chain ? chain : "");
	for (char **l = lowers; *l; l++)
		printf("lowerdir %s\n", *l);
	free(chain);
	kn_strv_free(lowers);
	store_image_free(img);
	store_free(s);
	return 0;
}

static int cmd_mount(int argc, char **argv)
{
	kn_error *err = NULL;

	if (argc < 5) {
		fprintf(stderr, "usage: layer-tool mount TARGET UPPER WORK LOWER...\n");
		return 2;
	}
	if (layer_overlay_mount(argv[1], argv + 4, *argv[2] ? argv[2] : NULL,
				*argv[3] ? argv[3] : NULL, &err) < 0)
		return fail(err);
	return 0;
}

static int cmd_image(int argc, char **argv)
{
	struct layer_write_opts wo = LAYER_WRITE_OPTS_INIT;
	struct store *s = NULL;
	struct image_config *cfg = NULL;
	struct store_desc *descs = NULL;
	kn_error *err = NULL;
	char *id = NULL;
	bool overlay = false;
	int first = 3, n = 0, r = 1;

	if (argc >= 4 && !strcmp(argv[3], "--overlay")) {
		overlay = true;
		first = 4;
	}
	if (argc < first + 1) {
		fprintf(stderr, "usage: layer-tool image ROOT NAME [--overlay] DIR...\n");
		return 2;
	}
	if (layer_write_opts_from_env(&wo, &err) < 0 || store_open(argv[1], STORE_WRITE, &s, &err) < 0)
		return fail(err);
	cfg = image_config_new();
	descs = xcalloc((size_t)(argc - first), sizeof(*descs));
	for (int i = first; i < argc; i++) {
		struct layer_result res = { 0 };
		struct image_history h = { .created_by = (char *)"layer-tool image" };

		if ((overlay ? layer_diff_overlay(s, argv[i], NULL, &wo, &res, &err)
			     : layer_from_dir(s, argv[i], &wo, &res, &err)) < 0)
			goto out;
		image_config_add_layer(cfg, res.diff_id);
		image_config_add_history(cfg, &h);
		store_desc_copy(&descs[n++], &res.desc);
		layer_result_release(&res);
	}
	if (store_image_write(s, cfg, descs, (size_t)n, IMAGE_FORMAT_OCI, argv[2], NULL, &id, &err) < 0)
		goto out;
	printf("%s\n", id);
	r = 0;
out:
	if (err)
		fail(err);
	for (int i = 0; i < n; i++)
		store_desc_release(&descs[i]);
	free(descs);
	free(id);
	image_config_free(cfg);
	store_free(s);
	return r;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: layer-tool create|tar|apply|prepare|mount ...\n");
		return 2;
	}
	if (!strcmp(argv[1], "create"))
		return cmd_create(argc - 1, argv + 1, false);
	if (!strcmp(argv[1], "tar"))
		return cmd_create(argc - 1, argv + 1, true);
	if (!strcmp(argv[1], "apply"))
		return cmd_apply(argc - 1, argv + 1);
	if (!strcmp(argv[1], "prepare"))
		return cmd_prepare(argc - 1, argv + 1);
	if (!strcmp(argv[1], "mount"))
		return cmd_mount(argc - 1, argv + 1);
	if (!strcmp(argv[1], "image"))
		return cmd_image(argc - 1, argv + 1);
	fprintf(stderr, "layer-tool: unknown command '%s'\n", argv[1]);
	return 2;
}
