/* kiln logout: remove stored registry credentials. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "registry/registry.h"

static void usage(FILE *out)
{
	fputs("Usage: kiln logout [OPTIONS] [REGISTRY]\n"
	      "\n"
	      "Remove the credentials stored for REGISTRY (default docker.io) from Docker's config.json\n"
	      "or its credential helper.\n"
	      "\n"
	      "Options:\n"
	      "  -h, --help   show this help\n",
	      out);
}

int cmd_logout(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	_cleanup_free_ char *domain = NULL;
	const char *registry;
	struct reg_opts opts;
	kn_error *err = NULL;
	int c;

	while ((c = cli_getopt("logout", argc, argv, ":h", longopts)) != -1) {
		switch (c) {
		case 'h':
			usage(stdout);
			return CLI_EXIT_OK;
		default:
			return CLI_EXIT_USAGE;
		}
	}
	if (optind + 1 < argc)
		return cli_usage_error("logout", "too many arguments");
	registry = optind < argc ? argv[optind] : "docker.io";
	domain = reg_registry_normalize(registry);
	reg_opts_init(&opts);
	if (reg_logout(registry, &opts, &err) < 0) {
		if (err->code == ENOENT && !strncmp(err->msg, "not logged in", 13)) {
			/* As docker: logging out twice is not an error. */
			fprintf(stderr, "Not logged in to %s\n", domain);
			kn_error_free(err);
			return CLI_EXIT_OK;
		}
		return cli_fail(err);
	}
	printf("Removing login credentials for %s\n", domain);
	return CLI_EXIT_OK;
}
