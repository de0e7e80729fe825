/* kiln tag: give an image in the local store another name. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "layers/layers.h"

int cmd_tag(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		CLI_OPT_ROOT_ENTRY,
		{ NULL, 0, NULL, 0 },
	};
	_cleanup_(store_freep) struct store *s = NULL;
	_cleanup_(store_image_freep) struct store_image *img = NULL;
	_cleanup_free_ char *dst = NULL;
	kn_error *err = NULL;
	int c;

	while ((c = cli_getopt("tag", argc, argv, ":h", opts)) != -1) {
		switch (c) {
		case 'h':
			fputs("Usage: kiln tag [OPTIONS] SOURCE TARGET\n"
			      "\n"
			      "Make TARGET name the image SOURCE (a name, ID or ID prefix).\n"
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
	if (argc - optind != 2)
		return cli_usage_error("tag", "expected SOURCE and TARGET");
	if (store_ref_normalize(argv[optind + 1], &dst, &err) < 0)
		return cli_fail(err);
	if (strchr(dst, '@'))
		return cli_usage_error("tag", "target '%s' must be a name with a tag, not a digest",
				       argv[optind + 1]);
	if (store_open(cli_root(), STORE_WRITE, &s, &err) < 0 ||
	    store_image_resolve(s, argv[optind], &img, &err) < 0 ||
	    store_ref_set(s, dst, &img->top, &err) < 0)
		return cli_fail(err);
	return CLI_EXIT_OK;
}
