/* kiln: git-style dispatch to the subcommands in cli/cmd-<name>.c. */
#include <stdio.h>
#include <string.h>

#include "base/userns.h"
#include "cli/cli.h"

const struct cli_cmd cli_commands[] = {
	/* KILN-COMMAND-TABLE (keep sorted; one line per command) */
	{ "build", cmd_build, "build an image from a Dockerfile" },
	{ "fsck", cmd_fsck, "verify the digests and references of the local store" },
	{ "images", cmd_images, "list images in the local store" },
	{ "import", cmd_import, "make a one-layer image from a root file system tarball" },
	{ "inspect", cmd_inspect, "show images as JSON" },
	{ "load", cmd_load, "load images from a docker-archive or oci-archive tarball" },
	{ "login", cmd_login, "log in to a container registry" },
	{ "logout", cmd_logout, "remove stored registry credentials" },
	{ "parse", cmd_parse, "parse a Dockerfile and print its syntax tree" },
	{ "prune", cmd_prune, "remove unused blobs and snapshots" },
	{ "pull", cmd_pull, "pull an image from a registry" },
	{ "push", cmd_push, "push an image to a registry" },
	{ "rmi", cmd_rmi, "untag and remove images" },
	{ "run", cmd_run, "run a command in a new container from an image" },
	{ "save", cmd_save, "save images to a docker-archive or oci-archive tarball" },
	{ "tag", cmd_tag, "give an image another name" },
	{ NULL, NULL, NULL },
};

/*
 * Commands that unpack layers into snapshots, run steps or remove snapshots: for a user who is
 * not root they run inside a user namespace (base/userns.h), so the store holds the image's IDs.
 */
static const char *const userns_commands[] = { "build", "fsck", "import", "load", "prune",
					       "pull",	"rmi",  "run",	 NULL };

static int enter_userns(const char *cmd, int argc, char **argv)
{
	kn_error *err = NULL;
	bool needed = false;

	for (const char *const *c = userns_commands; *c && !needed; c++)
		needed = !strcmp(*c, cmd);
	for (int i = 1; i < argc && needed; i++)
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help"))
			needed = false;
	if (!needed || kn_userns_enter(&err) == 0)
		return 0;
	return cli_fail(err);
}

static void usage(FILE *out)
{
	fputs("Usage: kiln [--root DIR] COMMAND [OPTIONS] [ARGS...]\n"
	      "\n"
	      "kiln builds OCI and Docker container images from Dockerfiles without a daemon.\n"
	      "\n"
	      "Global options:\n"
	      "  --root DIR     local image store (default /var/lib/kiln for root, else\n"
	      "                 ~/.local/share/kiln; also $KILN_ROOT)\n"
	      "  -h, --help     show this help\n"
	      "  --version      show the version\n"
	      "\n"
	      "Commands:\n",
	      out);
	for (const struct cli_cmd *c = cli_commands; c->name; c++)
		fprintf(out, "  %-10s %s\n", c->name, c->summary);
	fputs("\nRun 'kiln COMMAND --help' for a command's options; see kiln(1).\n", out);
}

int main(int argc, char **argv)
{
	int i = 1;

	while (i < argc && argv[i][0] == '-') {
		const char *a = argv[i];

		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			return CLI_EXIT_OK;
		} else if (!strcmp(a, "--version")) {
			printf("kiln version %s\n", KILN_VERSION);
			return CLI_EXIT_OK;
		} else if (!strcmp(a, "--root")) {
			if (i + 1 >= argc)
				return cli_usage_error(NULL, "option '--root' requires an argument");
			cli_set_root(argv[++i]);
		} else if (!strncmp(a, "--root=", 7)) {
			cli_set_root(a + 7);
		} else {
			return cli_usage_error(NULL, "unknown option '%s'", a);
		}
		i++;
	}
	if (i >= argc) {
		usage(stderr);
		return CLI_EXIT_USAGE;
	}
	for (const struct cli_cmd *c = cli_commands; c->name; c++) {
		if (!strcmp(c->name, argv[i])) {
			if (enter_userns(c->name, argc - i, argv + i) != 0)
				return CLI_EXIT_FAIL;
			cli_getopt_reset();
			return c->fn(argc - i, argv + i);
		}
	}
	return cli_usage_error(NULL, "unknown command '%s'", argv[i]);
}
