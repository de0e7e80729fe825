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
	"      --root DIR            the local image store\n"
	"  -h, --help                show this help\n";

enum { OPT_PLATFORM = 0x100, OPT_TLS_VERIFY };

static const struct option pull_options[] = {
	{ "platform", required_argument, NULL, OPT_PLATFORM },
	{ "tls-verify", optional_argument, NULL, OPT_TLS_VERIFY },
	{ "jobs", required_argument, NULL, 'j' },
	{ "quiet", no_argument, NULL, 'q' },
	{ "help", no_argument, NULL, 'h' },
	CLI_OPT_ROOT_ENTRY,
	{ NULL, 0, NULL, 0 },
};

struct pull_display {
	bool quiet;
	const char *tag_or_digest;
	const char *repo;
};

static void pull_progress(const struct reg_transfer_event *ev, void *data)
{
	struct pull_display *d = data;

	if (ev->kind == REG_XFER_RETRY) {
		cli_warn("%s: retrying: %s", ev->digest ? cli_short_digest(ev->digest) : "registry",
			 ev->text ? ev->text : "transient failure");
		return;
	}
	if (d->quiet || ev->is_config)
		return;
	switch (ev->kind) {
	case REG_XFER_RESOLVED:
		printf("%s: Pulling from %s\n", d->tag_or_digest, d->repo);
		break;
	case REG_XFER_BLOB_EXISTS:
		printf("%s: Already exists\n", cli_short_digest(ev->digest));
		break;
	case REG_XFER_BLOB_DONE:
		printf("%s: Pull complete\n", cli_short_digest(ev->digest));
		break;
	case REG_XFER_BLOB_START:
	case REG_XFER_BLOB_MOUNTED:
	case REG_XFER_RETRY:
		break;
	}
	fflush(stdout);
}

int cmd_pull(int argc, char **argv)
{
	struct reg_pull_opts o;
	struct reg_pull_result res = { 0 };
	struct pull_display disp = { 0 };
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
			disp.quiet = true;
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
	disp.tag_or_digest = ref->digest ? ref->digest : ref->tag;
	disp.repo = ref->path;
	o.root = cli_root();
	o.progress = pull_progress;
	o.progress_data = &disp;
	if (reg_pull(argv[optind], &o, &res, &err) < 0) {
		reg_ref_free(ref);
		return cli_fail(err);
	}
	if (disp.quiet) {
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
