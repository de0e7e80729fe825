/* kiln pull: fetches an image from a registry into the store (arguments and printing only). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "registry/registry.h"

static const char pull_usage[] =
	"Usage: kiln pull [OPTIONS] REF\n"
	"\n"
	"Pulls an image (name[:tag] or name@digest) from its registry into the local store.\n"
	"\n"
	"Options:\n"
	"      --platform OS/ARCH[/VARIANT]  the platform to pick from a multi-platform image\n"
	"                            (default: this machine's)\n"
	"      --tls-verify[=BOOL]   verify TLS certificates (default true; false also allows\n"
	"                            plain HTTP)\n"
	"  -j, --jobs N              blobs to download in parallel (default 3)\n"
	"  -q, --quiet               print only the image's name\n"
	"      --progress MODE       auto, plain, tty, quiet or rawjson (default auto)\n"
	"      --root DIR            the local image store\n"
	"  -h, --help                show this help\n";

enum { OPT_PLATFORM = 0x100, OPT_TLS_VERIFY, OPT_PROGRESS };

static const struct option pull_options[] = {
	{ "platform", required_argument, NULL, OPT_PLATFORM },
	{ "tls-verify", optional_argument, NULL, OPT_TLS_VERIFY },
	{ "jobs", required_argument, NULL, 'j' },
	{ "quiet", no_argument, NULL, 'q' },
	{ "progress", required_argument, NULL, OPT_PROGRESS },
	{ "help", no_argument, NULL, 'h' },
	CLI_OPT_ROOT_ENTRY,
	{ NULL, 0, NULL, 0 },
};

int cmd_pull(int argc, char **argv)
{
	struct reg_pull_opts o;
	struct reg_pull_result res = { 0 };
	_cleanup_(cli_progress_freep) struct cli_progress *prog = NULL;
	enum cli_progress_mode mode = CLI_PROGRESS_AUTO;
	bool quiet = false;
	struct reg_ref *ref = NULL;
	kn_error *err = NULL;
	_cleanup_free_ char *familiar = NULL;
	int c;

	reg_pull_opts_init(&o);
	while ((c = cli_getopt("pull", argc, argv, ":hqj:", pull_options)) != -1) {
		switch (c) {
		case 'h':
			fputs(pull_usage, stdout);
			return CLI_EXIT_OK;
		case 'q':
			quiet = true;
			break;
		case 'j': {
			char *end = NULL;
			long n = strtol(optarg, &end, 10);

			if (!*optarg || *end || n < 1 || n > 16)
				return cli_usage_error("pull", "invalid --jobs '%s': expected 1-16",
						       optarg);
			o.jobs = (unsigned)n;
			break;
		}
		case OPT_PROGRESS:
			if (cli_progress_mode_parse(optarg, &mode) < 0)
				return cli_usage_error("pull", "invalid --progress mode '%s'", optarg);
			break;
		case OPT_PLATFORM:
			o.platform = optarg;
			break;
		case OPT_TLS_VERIFY:
			o.tls_verify = cli_parse_bool(optarg);
			if (o.tls_verify < 0)
				return cli_usage_error("pull", "invalid --tls-verify value '%s'",
						       optarg);
			break;
		case CLI_OPT_ROOT:
			cli_set_root(optarg);
			break;
		default:
			return CLI_EXIT_USAGE;
		}
	}
	if (argc - optind != 1)
		return cli_usage_error("pull", "expected exactly one image reference");
	if (reg_ref_parse(argv[optind], &ref, &err) < 0)
		return cli_fail(err);
	if (quiet)
		mode = CLI_PROGRESS_QUIET;
	prog = cli_progress_new(mode, stdout, "Pulling");
	mode = cli_progress_mode(prog);
	if (mode == CLI_PROGRESS_PLAIN || mode == CLI_PROGRESS_TTY) {
		_cleanup_free_ char *head = xasprintf("%s: Pulling from %s",
						      ref->digest ? ref->digest : ref->tag, ref->path);

		cli_progress_message(prog, false, head);
	}
	o.root = cli_root();
	o.progress = cli_progress_pull_event;
	o.progress_data = prog;
	if (reg_pull(argv[optind], &o, &res, &err) < 0) {
		cli_progress_finish(prog, false);
		cli_auth_hint(&err, argv[optind]);
		reg_ref_free(ref);
		return cli_fail(err);
	}
	cli_progress_finish(prog, true);
	if (mode == CLI_PROGRESS_RAWJSON) {
		/* nothing else on stdout: it holds the JSON stream */
	} else if (quiet) {
		printf("%s\n", res.name);
	} else {
		familiar = reg_ref_familiar(ref);
		printf("Digest: %s\n", res.digest);
		printf("Status: %s for %s\n",
		       res.updated ? "Downloaded newer image" : "Image is up to date", familiar);
		printf("%s\n", res.name);
	}
	reg_ref_free(ref);
	reg_pull_result_release(&res);
	return CLI_EXIT_OK;
}
