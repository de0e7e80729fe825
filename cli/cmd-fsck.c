/* kiln fsck: verify every blob digest and every reference of the local store. */
#include <stdio.h>

#include "cli/cli.h"
#include "layers/layers.h"

static void report(const char *problem, void *userdata)
{
	(void)userdata;
	printf("%s\n", problem);
}

int cmd_fsck(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		CLI_OPT_ROOT_ENTRY,
		{ NULL, 0, NULL, 0 },
	};
	_cleanup_(store_freep) struct store *s = NULL;
	kn_error *err = NULL;
	int c, n;

	while ((c = cli_getopt("fsck", argc, argv, ":h", opts)) != -1) {
		switch (c) {
		case 'h':
			fputs("Usage: kiln fsck [OPTIONS]\n"
			      "\n"
			      "Check the local store: every blob's digest, every image's manifest, config\n"
			      "and layers, every build cache entry. Exits 1 when a problem is found.\n"
			      "\n"
			      "Options:\n"
			      "      --root DIR   local image store\n"
			      "  -h, --help       show this help\n",
			      stdout);
			return CLI_EXIT_OK;
		case CLI_OPT_ROOT:
			cli_set_root(optarg);
			break;
		default:
			return CLI_EXIT_USAGE;
		}
	}
	if (optind < argc)
		return cli_usage_error("fsck", "unexpected argument '%s'", argv[optind]);
	if (cli_store_open_read(&s, &err) < 0)
		return cli_fail(err);
	n = store_fsck(s, report, NULL, &err);
	if (n < 0)
		return cli_fail(err);
	if (n) {
		fprintf(stderr, "kiln: fsck: %d problem%s found\n", n, n == 1 ? "" : "s");
		return CLI_EXIT_FAIL;
	}
	printf("store '%s' is consistent\n", store_root(s));
	return CLI_EXIT_OK;
}
