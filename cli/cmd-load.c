/* kiln load: read images from a docker-archive or oci-archive tarball. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "layers/layers.h"

static void loaded(const char *name, const char *id, void *userdata)
{
	bool quiet = *(bool *)userdata;
	_cleanup_free_ char *fam = NULL;

	if (quiet)
		return;
	if (name) {
		fam = store_ref_familiar(name);
		printf("Loaded image: %s\n", fam);
	} else {
		printf("Loaded image ID: %s\n", id);
	}
}

int cmd_load(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "input", required_argument, NULL, 'i' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		CLI_OPT_ROOT_ENTRY,
		{ NULL, 0, NULL, 0 },
	};
	_cleanup_(store_freep) struct store *s = NULL;
	_cleanup_close_ int fd = -1;
	const char *input = NULL;
	kn_error *err = NULL;
	bool quiet = false;
	int c;

	while ((c = cli_getopt("load", argc, argv, ":hi:q", opts)) != -1) {
		switch (c) {
		case 'h':
			fputs("Usage: kiln load [OPTIONS]\n"
			      "\n"
			      "Load images from a docker-archive or oci-archive tarball (gzip, zstd, xz or\n"
			      "bzip2 compressed or not), verifying every digest.\n"
			      "\n"
			      "Options:\n"
			      "  -i, --input FILE   read FILE instead of stdin ('-' for stdin)\n"
			      "  -q, --quiet        print nothing\n"
			      "      --root DIR     local image store\n"
			      "  -h, --help         show this help\n",
			      stdout);
			return CLI_EXIT_OK;
		case 'i':
			input = optarg;
			break;
		case 'q':
			quiet = true;
			break;
		case CLI_OPT_ROOT:
			cli_set_root(optarg);
			break;
		default:
			return CLI_EXIT_USAGE;
		}
	}
	if (optind < argc)
		return cli_usage_error("load", "unexpected argument '%s'", argv[optind]);
	if (input && strcmp(input, "-")) {
		fd = open(input, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return cli_fail((kn_error_errno(&err, "open '%s'", input), err));
	} else {
		if (isatty(STDIN_FILENO))
			return cli_usage_error("load", "refusing to read an archive from a terminal; use -i FILE");
		fd = dup(STDIN_FILENO);
		if (fd < 0)
			return cli_fail((kn_error_errno(&err, "stdin"), err));
	}
	if (store_open(cli_root(), STORE_WRITE, &s, &err) < 0 ||
	    store_archive_load(s, fd, loaded, &quiet, &err) < 0)
		return cli_fail(err);
	return CLI_EXIT_OK;
}
