/* kiln prune: remove dangling images, then the blobs and snapshots nothing references. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "layers/layers.h"

static char *human_size(int64_t n)
{
	static const char *const units[] = { "B", "kB", "MB", "GB", "TB", "PB" };
	double v = (double)n;
	size_t u = 0;

	while (v >= 1000 && u + 1 < KN_ARRAY_SIZE(units)) {
		v /= 1000;
		u++;
	}
	return xasprintf("%.3g%s", v, units[u]);
}

static void print_image(const char *id, void *userdata)
{
	printf("%s: %s\n", *(const bool *)userdata ? "Would delete" : "Deleted", id);
}

int cmd_prune(int argc, char **argv)
{
	enum { OPT_CACHE = 0x100, OPT_DRY };
	static const struct option opts[] = {
		{ "cache", no_argument, NULL, OPT_CACHE },
		{ "dry-run", no_argument, NULL, OPT_DRY },
		{ "help", no_argument, NULL, 'h' },
		CLI_OPT_ROOT_ENTRY,
		{ NULL, 0, NULL, 0 },
	};
	_cleanup_(store_freep) struct store *s = NULL;
	_cleanup_free_ char *h = NULL;
	kn_error *err = NULL;
	unsigned flags = STORE_GC_DANGLING;
	int64_t freed = 0;
	bool dry = false;
	int c;

	while ((c = cli_getopt("prune", argc, argv, ":h", opts)) != -1) {
		switch (c) {
		case 'h':
			fputs("Usage: kiln prune [OPTIONS]\n"
			      "\n"
			      "Remove dangling (untagged) images no build cache entry uses, then the\n"
			      "blobs and snapshots that no image nor build cache entry uses.\n"
			      "\n"
			      "Options:\n"
			      "      --cache      also drop every build cache entry first\n"
			      "      --dry-run    only report what would be reclaimed\n"
			      "      --root DIR   local image store\n"
			      "  -h, --help       show this help\n",
			      stdout);
			return CLI_EXIT_OK;
		case OPT_CACHE:
			flags |= STORE_GC_CACHE;
			break;
		case OPT_DRY:
			flags |= STORE_GC_DRY_RUN;
			dry = true;
			break;
		case CLI_OPT_ROOT:
			cli_set_root(optarg);
			break;
		default:
			return CLI_EXIT_USAGE;
		}
	}
	if (optind < argc)
		return cli_usage_error("prune", "unexpected argument '%s'", argv[optind]);
	if (store_open(cli_root(), STORE_EXCLUSIVE, &s, &err) < 0 ||
	    store_gc_images(s, flags, print_image, &dry, &freed, &err) < 0)
		return cli_fail(err);
	h = human_size(freed);
	printf("Total reclaimed space: %s (%lld bytes)\n", h, (long long)freed);
	return CLI_EXIT_OK;
}
