/* kiln push: uploads an image from the store to a registry (arguments and printing only). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "registry/registry.h"

static const char push_usage[] =
	"Usage: kiln push [OPTIONS] IMAGE [DEST]\n"
	"\n"
	"Pushes a local image to a registry: to DEST (a reference) or to the image's own name.\n"
	"\n"
	"Options:\n"
	"      --tls-verify[=BOOL]   verify TLS certificates (default true; false also allows\n"
	"                            plain HTTP)\n"
	"      --digestfile FILE     write the pushed manifest's digest to FILE\n"
	"      --format FORMAT       oci or docker: convert the manifest's media types\n"
	"                            (default: push it as stored)\n"
	"  -j, --jobs N              blobs to upload in parallel (default 3)\n"
	"  -q, --quiet               print nothing but errors\n"
	"      --progress MODE       auto, plain, tty, quiet or rawjson (default auto)\n"
	"      --root DIR            the local image store\n"
	"  -h, --help                show this help\n";

enum { OPT_TLS_VERIFY = 0x100, OPT_DIGESTFILE, OPT_FORMAT, OPT_PROGRESS };

static const struct option push_options[] = {
	{ "tls-verify", optional_argument, NULL, OPT_TLS_VERIFY },
	{ "digestfile", required_argument, NULL, OPT_DIGESTFILE },
	{ "format", required_argument, NULL, OPT_FORMAT },
	{ "jobs", required_argument, NULL, 'j' },
	{ "quiet", no_argument, NULL, 'q' },
	{ "progress", required_argument, NULL, OPT_PROGRESS },
	{ "help", no_argument, NULL, 'h' },
	CLI_OPT_ROOT_ENTRY,
	{ NULL, 0, NULL, 0 },
};

int cmd_push(int argc, char **argv)
{
	struct reg_push_opts o;
	struct reg_push_result res = { 0 };
	const char *digestfile = NULL;
	_cleanup_(cli_progress_freep) struct cli_progress *prog = NULL;
	enum cli_progress_mode mode = CLI_PROGRESS_AUTO;
	kn_error *err = NULL;
	bool quiet = false;
	int c;

	reg_push_opts_init(&o);
	while ((c = cli_getopt("push", argc, argv, ":hqj:", push_options)) != -1) {
		switch (c) {
		case 'h':
			fputs(push_usage, stdout);
			return CLI_EXIT_OK;
		case 'q':
			quiet = true;
			break;
		case 'j': {
			char *end = NULL;
			long n = strtol(optarg, &end, 10);

			if (!*optarg || *end || n < 1 || n > 16)
				return cli_usage_error("push", "invalid --jobs '%s': expected 1-16",
						       optarg);
			o.jobs = (unsigned)n;
			break;
		}
		case OPT_TLS_VERIFY:
			o.tls_verify = cli_parse_bool(optarg);
			if (o.tls_verify < 0)
				return cli_usage_error("push", "invalid --tls-verify value '%s'",
						       optarg);
			break;
		case OPT_PROGRESS:
			if (cli_progress_mode_parse(optarg, &mode) < 0)
				return cli_usage_error("push", "invalid --progress mode '%s'", optarg);
			break;
		case OPT_DIGESTFILE:
			digestfile = optarg;
			break;
		case OPT_FORMAT:
			if (!strcmp(optarg, "oci"))
				o.format = REG_PUSH_FORMAT_OCI;
			else if (!strcmp(optarg, "docker") || !strcmp(optarg, "v2s2"))
				o.format = REG_PUSH_FORMAT_DOCKER;
			else
				return cli_usage_error("push", "invalid --format '%s': use oci or docker",
						       optarg);
			break;
		case CLI_OPT_ROOT:
			cli_set_root(optarg);
			break;
		default:
			return CLI_EXIT_USAGE;
		}
	}
	if (argc - optind < 1 || argc - optind > 2)
		return cli_usage_error("push", "expected IMAGE and an optional DEST");
	o.root = cli_root();
	if (quiet)
		mode = CLI_PROGRESS_QUIET;
	prog = cli_progress_new(mode, stdout, "Pushing");
	o.progress = cli_progress_push_event;
	o.progress_data = prog;
	if (reg_push(argv[optind], argc - optind == 2 ? argv[optind + 1] : NULL, &o, &res, &err) < 0) {
		cli_progress_finish(prog, false);
		cli_auth_hint(&err, argc - optind == 2 ? argv[optind + 1] : argv[optind]);
		return cli_fail(err);
	}
	cli_progress_finish(prog, true);
	mode = cli_progress_mode(prog);
	if (mode != CLI_PROGRESS_QUIET && mode != CLI_PROGRESS_RAWJSON)
		printf("%s: digest: %s size: %llu\n", res.tag ? res.tag : res.digest, res.digest,
		       (unsigned long long)res.size);
	if (digestfile &&
	    kn_write_file_atomic(digestfile, res.digest, strlen(res.digest), 0644, &err) < 0) {
		reg_push_result_release(&res);
		kn_error_wrap(&err, "cannot write --digestfile");
		return cli_fail(err);
	}
	reg_push_result_release(&res);
	return CLI_EXIT_OK;
}
