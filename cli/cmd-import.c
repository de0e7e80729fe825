/* kiln import: make a one-layer image from a root file system tarball. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "layers/layers.h"

enum { OPT_COMPRESSION = 0x100, OPT_LEVEL, OPT_FORMAT };

static char *rfc3339(time_t t)
{
	struct tm tm;
	char buf[64];

	if (!gmtime_r(&t, &tm) || !strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm))
		return xstrdup("1970-01-01T00:00:00Z");
	return xstrdup(buf);
}

int cmd_import(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "compression", required_argument, NULL, OPT_COMPRESSION },
		{ "level", required_argument, NULL, OPT_LEVEL },
		{ "format", required_argument, NULL, OPT_FORMAT },
		CLI_OPT_ROOT_ENTRY,
		{ NULL, 0, NULL, 0 },
	};
	_cleanup_(store_freep) struct store *s = NULL;
	_cleanup_(image_config_freep) struct image_config *cfg = NULL;
	_cleanup_free_ char *created = NULL, *id = NULL;
	_cleanup_close_ int fd = -1;
	struct layer_write_opts wo = LAYER_WRITE_OPTS_INIT;
	struct layer_result layer = { 0 };
	struct image_history hist = { 0 };
	enum image_format fmt = IMAGE_FORMAT_OCI;
	kn_error *err = NULL;
	const char *file, *name;
	char *end;
	int c, r;

	while ((c = cli_getopt("import", argc, argv, ":h", opts)) != -1) {
		switch (c) {
		case 'h':
			fputs("Usage: kiln import [OPTIONS] FILE|- NAME\n"
			      "\n"
			      "Make a one-layer image NAME from a root file system tarball (plain, gzip,\n"
			      "zstd, xz or bzip2; '-' reads stdin) and print its image ID.\n"
			      "\n"
			      "Options:\n"
			      "      --compression ALG  layer compression: gzip (default), zstd, none\n"
			      "      --level N          compression level (gzip 1-12, zstd 1-22)\n"
			      "      --format FMT       manifest format: oci (default) or docker\n"
			      "      --root DIR         local image store\n"
			      "  -h, --help             show this help\n"
			      "\n"
			      "SOURCE_DATE_EPOCH, when set, clamps file times and sets the created time.\n",
			      stdout);
			return CLI_EXIT_OK;
		case OPT_COMPRESSION:
			if (layer_compression_parse(optarg, &wo.compression, &err) < 0) {
				kn_error_free(err);
				return cli_usage_error("import", "unknown compression '%s'", optarg);
			}
			break;
		case OPT_LEVEL:
			wo.level = (int)strtol(optarg, &end, 10);
			if (!*optarg || *end || wo.level < 1)
				return cli_usage_error("import", "invalid level '%s'", optarg);
			break;
		case OPT_FORMAT:
			if (!strcmp(optarg, "oci"))
				fmt = IMAGE_FORMAT_OCI;
			else if (!strcmp(optarg, "docker"))
				fmt = IMAGE_FORMAT_DOCKER;
			else
				return cli_usage_error("import", "unknown format '%s' (use oci or docker)",
						       optarg);
			break;
		case CLI_OPT_ROOT:
			cli_set_root(optarg);
			break;
		default:
			return CLI_EXIT_USAGE;
		}
	}
	if (argc - optind != 2)
		return cli_usage_error("import", "expected FILE and NAME");
	file = argv[optind];
	name = argv[optind + 1];
	if (layer_write_opts_from_env(&wo, &err) < 0)
		return cli_fail(err);
	if (!strcmp(file, "-")) {
		if (isatty(STDIN_FILENO))
			return cli_usage_error("import", "refusing to read a tarball from a terminal");
		fd = fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 3);
	} else {
		fd = open(file, O_RDONLY | O_CLOEXEC);
	}
	if (fd < 0)
		return cli_fail((kn_error_errno(&err, "cannot open '%s'", file), err));

	if (store_open(cli_root(), STORE_WRITE, &s, &err) < 0)
		return cli_fail(err);
	if (layer_from_tar(s, fd, &wo, &layer, &err) < 0) {
		kn_error_wrap(&err, "import '%s'", file);
		return cli_fail(err);
	}

	created = rfc3339(wo.clamp_mtime ? (time_t)wo.source_date_epoch : time(NULL));
	cfg = image_config_new();
	free(cfg->created);
	cfg->created = xstrdup(created);
	image_config_add_layer(cfg, layer.diff_id);
	hist.created = created;
	hist.created_by = (char *)"kiln import";
	image_config_add_history(cfg, &hist);
	r = store_image_write(s, cfg, &layer.desc, 1, fmt, name, NULL, &id, &err);
	layer_result_release(&layer);
	if (r < 0)
		return cli_fail(err);
	printf("%s\n", id);
	return CLI_EXIT_OK;
}
