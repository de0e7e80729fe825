/* kiln build: builds an image from a Dockerfile and a context (arguments and printing only). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "builder/builder.h"
#include "cli/build-options.h"
#include "cli/cli.h"
#include "registry/registry.h"

static const char build_usage[] =
	"Usage: kiln build [OPTIONS] CONTEXT\n"
	"\n"
	"Builds an image from a Dockerfile. CONTEXT is a directory, '-' to read a tar of the\n"
	"context (or a bare Dockerfile) from stdin, or a git repository URL REPO[#REF[:SUBDIR]]\n"
	"(git://, git@HOST:, ssh://, http(s)://...git), or an http(s) URL of a tar of the context.\n"
	"The image ID is printed last on stdout.\n"
	"\n"
	"Options:\n"
	"  -t, --tag NAME            name the result (repeatable)\n"
	"  -f, --file FILE           the Dockerfile ('-' for stdin; default CONTEXT/Dockerfile)\n"
	"      --target STAGE        build this stage instead of the last one\n"
	"      --build-arg K[=V]     set a build-time variable (repeatable; K alone takes $K)\n"
	"      --label K=V           add a label to the image (repeatable)\n"
	"      --no-cache            do not use the build cache\n"
	"      --cache-from SPEC     import a build cache: type=registry,ref=REPO:TAG or\n"
	"                            type=local,src=DIR (repeatable; the first hit wins)\n"
	"      --cache-to SPEC       export the build cache: type=registry,ref=REPO:TAG[,mode=max]\n"
	"                            [,compression=zstd], type=inline or type=local,dest=DIR\n"
	"      --pull[=POLICY]       pull base images: missing (default), always, never\n"
	"      --iidfile FILE        write the image ID to FILE\n"
	"  -q, --quiet               print only the image ID\n"
	"      --progress MODE       auto, plain, tty, quiet or rawjson (default auto)\n"
	"      --network MODE        RUN network: default, none or host\n"
	"      --format FORMAT       oci (default) or docker\n"
	"      --compression ALGO    gzip (default), zstd or none\n"
	"      --timestamp T         now (the clock, file times unclamped) or seconds since\n"
	"                            1970 (default: SOURCE_DATE_EPOCH, the context's git HEAD\n"
	"                            commit time, else the base image's created)\n"
	"      --secret id=ID,src=PATH  expose a secret to RUN --mount=type=secret (repeatable)\n"
	"      --push                push every -t name to its registry after the build\n"
	"      --tls-verify[=BOOL]   with --push and registry caches: verify TLS certificates\n"
	"                            (default true; false also allows plain HTTP)\n"
	BUILD_FLAGS_USAGE
	"      --root DIR            the local image store\n"
	"  -h, --help                show this help\n";

enum {
	OPT_TARGET = 0x100,
	OPT_BUILD_ARG,
	OPT_LABEL,
	OPT_NO_CACHE,
	OPT_PULL,
	OPT_IIDFILE,
	OPT_PROGRESS,
	OPT_NETWORK,
	OPT_FORMAT,
	OPT_COMPRESSION,
	OPT_TIMESTAMP,
	OPT_SECRET,
	OPT_PUSH,
	OPT_TLS_VERIFY,
	OPT_CACHE_FROM,
	OPT_CACHE_TO,
};

static const struct option build_options[] = {
	{ "tag", required_argument, NULL, 't' },
	{ "file", required_argument, NULL, 'f' },
	{ "target", required_argument, NULL, OPT_TARGET },
	{ "build-arg", required_argument, NULL, OPT_BUILD_ARG },
	{ "label", required_argument, NULL, OPT_LABEL },
	{ "no-cache", no_argument, NULL, OPT_NO_CACHE },
	{ "pull", optional_argument, NULL, OPT_PULL },
	{ "iidfile", required_argument, NULL, OPT_IIDFILE },
	{ "quiet", no_argument, NULL, 'q' },
	{ "progress", required_argument, NULL, OPT_PROGRESS },
	{ "network", required_argument, NULL, OPT_NETWORK },
	{ "format", required_argument, NULL, OPT_FORMAT },
	{ "compression", required_argument, NULL, OPT_COMPRESSION },
	{ "timestamp", required_argument, NULL, OPT_TIMESTAMP },
	{ "secret", required_argument, NULL, OPT_SECRET },
	{ "push", no_argument, NULL, OPT_PUSH },
	{ "tls-verify", optional_argument, NULL, OPT_TLS_VERIFY },
	{ "cache-from", required_argument, NULL, OPT_CACHE_FROM },
	{ "cache-to", required_argument, NULL, OPT_CACHE_TO },
	{ "help", no_argument, NULL, 'h' },
	BUILD_FLAGS_OPTIONS,
	CLI_OPT_ROOT_ENTRY,
	{ NULL, 0, NULL, 0 },
};

/* ---- stdin context --------------------------------------------------------------------------- */

/*
 * Reads stdin: a bare Dockerfile lands in *dockerfile; an archive is spooled to an unlinked temp
 * file whose fd is returned in *ret_fd (libarchive needs to re-read from the start).
 */
/* A NUL byte or bytes that are not UTF-8: no Dockerfile looks like that. */
static bool looks_binary(const char *data, size_t len)
{
	for (size_t i = 0; i < len;) {
		unsigned char c = (unsigned char)data[i];
		size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;

		if (!c || !n)
			return true;
		if (i + n > len)
			break; /* a sequence cut by the end of what was read */
		for (size_t k = 1; k < n; k++)
			if (((unsigned char)data[i + k] >> 6) != 2)
				return true;
		i += n;
	}
	return false;
}

static int read_stdin_context(struct kn_buf *dockerfile, int *ret_fd, kn_error **err)
{
	struct kn_buf head = KN_BUF_INIT;
	_cleanup_close_ int fd = -1;
	_cleanup_free_ char *tmpl = NULL;
	const char *tmpdir = getenv("TMPDIR");
	char chunk[65536];
	ssize_t n;

	while (head.len < 512) {
		n = read(STDIN_FILENO, chunk, 512 - head.len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			kn_buf_release(&head);
			return kn_error_errno(err, "cannot read the context from stdin");
		}
		if (n == 0)
			break;
		kn_buf_add(&head, chunk, (size_t)n);
	}
	if (!bld_looks_like_archive(head.buf, head.len) && looks_binary(head.buf, head.len)) {
		kn_buf_release(&head);
		return kn_error_set(err, EINVAL,
				    "the context on stdin is neither a tar archive (plain, gzip, bzip2, xz "
				    "or zstd) nor a Dockerfile (text): it holds binary data");
	}
	if (!bld_looks_like_archive(head.buf, head.len)) {
		kn_buf_add(dockerfile, head.buf, head.len);
		kn_buf_release(&head);
		return kn_read_fd(STDIN_FILENO, 16 << 20, dockerfile, err);
	}
	tmpl = xasprintf("%s/kiln-context-XXXXXX", tmpdir && *tmpdir ? tmpdir : "/var/tmp");
	fd = mkostemp(tmpl, O_CLOEXEC);
	if (fd < 0) {
		kn_buf_release(&head);
		return kn_error_errno(err, "cannot create a temp file for the context");
	}
	unlink(tmpl);
	if (kn_write_all(fd, head.buf, head.len, err) < 0) {
		kn_buf_release(&head);
		return -1;
	}
	kn_buf_release(&head);
	for (;;) {
		n = read(STDIN_FILENO, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return kn_error_errno(err, "cannot read the context from stdin");
		if (n == 0)
			break;
		if (kn_write_all(fd, chunk, (size_t)n, err) < 0)
			return -1;
	}
	if (lseek(fd, 0, SEEK_SET) < 0)
		return kn_error_errno(err, "cannot rewind the context");
	*ret_fd = steal_fd(&fd);
	return 0;
}

/* ---- --push ------------------------------------------------------------------------------------ */

/*
 * Pushes every name to its registry. A failure names the push and says the image stays in the
 * local store.
 */
static int push_tags(const char *image_id, char *const *tags, int tls_verify,
		     enum cli_progress_mode mode, kn_error **err)
{
	struct reg_push_opts po;

	reg_push_opts_init(&po);
	po.root = cli_root();
	po.tls_verify = tls_verify;
	po.progress = cli_progress_push_event;
	for (size_t i = 0; tags[i]; i++) {
		_cleanup_(cli_progress_freep) struct cli_progress *prog =
			cli_progress_new(mode, stderr, "Pushing");
		struct reg_push_result res = { 0 };

		po.progress_data = prog;
		if (reg_push(tags[i], NULL, &po, &res, err) < 0) {
			cli_progress_finish(prog, false);
			return kn_error_wrap(err, "push of '%s' failed (the image %s stays in the local store)",
					     tags[i], image_id);
		}
		cli_progress_finish(prog, true);
		if (mode != CLI_PROGRESS_QUIET && mode != CLI_PROGRESS_RAWJSON)
			fprintf(stderr, "%s: digest: %s size: %llu\n", res.tag ? res.tag : res.digest, res.digest,
				(unsigned long long)res.size);
		reg_push_result_release(&res);
	}
	return 0;
}

/* ---- the command --------------------------------------------------------------------------- */

int cmd_build(int argc, char **argv)
{
	struct kn_strv tags = KN_STRV_INIT, build_args = KN_STRV_INIT, labels = KN_STRV_INIT;
	struct kn_strv secrets = KN_STRV_INIT, cache_from = KN_STRV_INIT, cache_to = KN_STRV_INIT;
	struct kn_buf dockerfile = KN_BUF_INIT;
	struct bld_options o;
	_cleanup_(cli_progress_freep) struct cli_progress *prog = NULL;
	enum cli_progress_mode progress_mode = CLI_PROGRESS_AUTO;
	struct build_flags bf;
	const char *file = NULL, *iidfile = NULL, *context;
	bool quiet = false, df_from_stdin = false, push = false;
	int tls_verify = -1;
	_cleanup_free_ char *image_id = NULL;
	_cleanup_close_ int ctx_fd = -1;
	kn_error *err = NULL;
	int ret = CLI_EXIT_FAIL, c;

	bld_options_init(&o);
	build_flags_init(&bf);

	ret = build_flags_check_unsupported(argc, argv, build_options);
	if (ret)
		goto out;
	ret = CLI_EXIT_FAIL;
	while ((c = cli_getopt("build", argc, argv, ":t:f:o:qh", build_options)) != -1) {
		switch (c) {
		case 't': {
			_cleanup_free_ char *norm = NULL;
			kn_error *terr = NULL;

			if (store_ref_normalize(optarg, &norm, &terr) < 0) {
				ret = cli_usage_error("build", "invalid tag '%s': %s", optarg, terr->msg);
				kn_error_free(terr);
				goto out;
			}
			kn_strv_push(&tags, optarg);
			break;
		}
		case 'f':
			file = optarg;
			break;
		case OPT_TARGET:
			o.target = optarg;
			break;
		case OPT_BUILD_ARG:
			/* docker: NAME alone takes $NAME; unset, the ARG keeps its default */
			if (strchr(optarg, '='))
				kn_strv_push(&build_args, optarg);
			else if (getenv(optarg))
				kn_strv_pushf(&build_args, "%s=%s", optarg, getenv(optarg));
			break;
		case OPT_LABEL:
			if (!strchr(optarg, '=')) {
				ret = cli_usage_error("build", "invalid label '%s': expected K=V", optarg);
				goto out;
			}
			kn_strv_push(&labels, optarg);
			break;
		case OPT_NO_CACHE:
			o.no_cache = true;
			break;
		case OPT_PULL:
			if (!optarg || !strcmp(optarg, "always") || !strcmp(optarg, "true"))
				o.pull = BLD_PULL_ALWAYS;
			else if (!strcmp(optarg, "missing"))
				o.pull = BLD_PULL_MISSING;
			else if (!strcmp(optarg, "never") || !strcmp(optarg, "false"))
				o.pull = BLD_PULL_NEVER;
			else {
				ret = cli_usage_error("build", "invalid --pull policy '%s'", optarg);
				goto out;
			}
			break;
		case OPT_IIDFILE:
			iidfile = optarg;
			break;
		case 'q':
			quiet = true;
			break;
		case OPT_PROGRESS:
			if (cli_progress_mode_parse(optarg, &progress_mode) < 0) {
				ret = cli_usage_error("build", "invalid --progress mode '%s'", optarg);
				goto out;
			}
			break;
		case OPT_NETWORK:
			if (!strcmp(optarg, "default"))
				o.network = BLD_NETWORK_DEFAULT;
			else if (!strcmp(optarg, "none"))
				o.network = BLD_NETWORK_NONE;
			else if (!strcmp(optarg, "host"))
				o.network = BLD_NETWORK_HOST;
			else {
				ret = cli_usage_error("build", "invalid --network mode '%s'", optarg);
				goto out;
			}
			break;
		case OPT_FORMAT:
			if (!strcmp(optarg, "oci"))
				o.format = BLD_FORMAT_OCI;
			else if (!strcmp(optarg, "docker"))
				o.format = BLD_FORMAT_DOCKER;
			else {
				ret = cli_usage_error("build", "invalid --format '%s'", optarg);
				goto out;
			}
			break;
		case OPT_COMPRESSION:
			if (!strcmp(optarg, "gzip"))
				o.compression = BLD_COMPRESS_GZIP;
			else if (!strcmp(optarg, "zstd"))
				o.compression = BLD_COMPRESS_ZSTD;
			else if (!strcmp(optarg, "none") || !strcmp(optarg, "uncompressed"))
				o.compression = BLD_COMPRESS_NONE;
			else {
				ret = cli_usage_error("build", "invalid --compression '%s'", optarg);
				goto out;
			}
			break;
		case OPT_TIMESTAMP:
			if (strcmp(optarg, "now") && (!*optarg || strspn(optarg, "0123456789") != strlen(optarg))) {
				ret = cli_usage_error("build", "invalid --timestamp '%s': expected now or seconds since 1970",
						      optarg);
				goto out;
			}
			o.timestamp = optarg;
			break;
		case OPT_SECRET:
			if (strncmp(optarg, "id=", 3) && !strstr(optarg, ",id=")) {
				ret = cli_usage_error("build", "invalid --secret '%s': expected id=ID,src=PATH", optarg);
				goto out;
			}
			kn_strv_push(&secrets, optarg);
			break;
		case OPT_PUSH:
			push = true;
			break;
		case OPT_TLS_VERIFY:
			tls_verify = cli_parse_bool(optarg);
			if (tls_verify < 0) {
				ret = cli_usage_error("build", "invalid --tls-verify value '%s'", optarg);
				goto out;
			}
			break;
		case OPT_CACHE_FROM:
		case OPT_CACHE_TO:
			if (bld_cache_spec_check(optarg, c == OPT_CACHE_TO, &err) < 0) {
				ret = cli_usage_error("build", "%s", err->msg);
				kn_error_free(err);
				goto out;
			}
			kn_strv_push(c == OPT_CACHE_TO ? &cache_to : &cache_from, optarg);
			break;
		case CLI_OPT_ROOT:
			cli_set_root(optarg);
			break;
		case 'h':
			fputs(build_usage, stdout);
			ret = CLI_EXIT_OK;
			goto out;
		default:
			if (c == 'o' || (c >= OPT_BX_FIRST && c < OPT_BX_LAST)) {
				if (build_flags_parse(&bf, c, optarg) == 0)
					break;
			}
			ret = CLI_EXIT_USAGE;
			goto out;
		}
	}
	if (build_flags_apply(&bf, &o, &tags, &push)) {
		ret = CLI_EXIT_USAGE;
		goto out;
	}
	if (optind + 1 != argc) {
		ret = cli_usage_error("build", optind >= argc ? "missing CONTEXT" : "too many arguments");
		goto out;
	}
	/* Files written at the end must be writable before hours of building, not after. */
	if ((iidfile && cli_check_writable(iidfile, "--iidfile", &err) < 0) ||
	    (bf.metadata_file && cli_check_writable(bf.metadata_file, "--metadata-file", &err) < 0)) {
		ret = cli_fail(err);
		goto out;
	}
	if (push && !tags.n) {
		ret = cli_usage_error("build", "--push needs at least one -t NAME");
		goto out;
	}
	context = argv[optind];
	if (quiet)
		progress_mode = CLI_PROGRESS_QUIET;
	prog = cli_progress_new(progress_mode, stderr, "Building");
	o.progress = cli_progress_build_event;
	o.progress_data = prog;

	df_from_stdin = file && !strcmp(file, "-");
	if (!strcmp(context, "-")) {
		if (df_from_stdin) {
			ret = cli_usage_error("build", "cannot read both the context and the Dockerfile from stdin");
			goto out;
		}
		if (read_stdin_context(&dockerfile, &ctx_fd, &err) < 0) {
			ret = cli_fail(err);
			goto out;
		}
		o.context_tar_fd = ctx_fd;
		if (ctx_fd < 0) {
			/* A bare Dockerfile: the context is empty. */
			o.dockerfile_data = dockerfile.buf;
			o.dockerfile_len = dockerfile.len;
		} else {
			o.dockerfile_path = file; /* relative to the unpacked context */
		}
	} else {
		/* a URL (git repository or tarball) or a directory; -f is a path inside it */
		if (strstr(context, "://") || !strncmp(context, "git@", 4))
			o.context_url = context;
		else
			o.context_dir = context;
		if (df_from_stdin) {
			if (kn_read_fd(STDIN_FILENO, 16 << 20, &dockerfile, &err) < 0) {
				ret = cli_fail(err);
				goto out;
			}
			o.dockerfile_data = dockerfile.buf;
			o.dockerfile_len = dockerfile.len;
		} else {
			o.dockerfile_path = file;
		}
	}
	o.dockerfile_name = file && !df_from_stdin ? file : "Dockerfile";
	o.root = cli_root();
	o.tags = tags.v;
	o.build_args = build_args.v;
	o.labels = labels.v;
	o.secrets = secrets.v;
	o.cache_from = cache_from.v;
	o.cache_to = cache_to.v;
	o.tls_verify = tls_verify;

	if (bld_build(&o, &image_id, &err) < 0) {
		cli_progress_finish(prog, false);
		ret = cli_fail(err);
		goto out;
	}
	cli_progress_finish(prog, true);
	if (cli_progress_mode(prog) != CLI_PROGRESS_QUIET && cli_progress_mode(prog) != CLI_PROGRESS_RAWJSON) {
		fprintf(stderr, "Built %s in %.2fs\n", image_id, cli_progress_elapsed(prog));
		for (size_t i = 0; !o.no_store && i < tags.n; i++)
			fprintf(stderr, "Tagged %s\n", tags.v[i]);
	}
	if (iidfile &&
	    kn_write_file_atomic(iidfile, image_id, strlen(image_id), 0644, &err) < 0) {
		ret = cli_fail(err);
		goto out;
	}
	if (push && push_tags(image_id, tags.v, tls_verify, cli_progress_mode(prog), &err) < 0) {
		ret = cli_fail(err);
		goto out;
	}
	if (build_flags_finish(&bf, tags.v, &err) < 0) {
		ret = cli_fail(err);
		goto out;
	}
	if (!build_flags_stdout_used(&bf))
		printf("%s\n", image_id);
	ret = fflush(stdout) ? CLI_EXIT_FAIL : CLI_EXIT_OK;
out:
	build_flags_release(&bf);
	kn_buf_release(&dockerfile);
	kn_strv_release(&tags);
	kn_strv_release(&build_args);
	kn_strv_release(&labels);
	kn_strv_release(&secrets);
	kn_strv_release(&cache_from);
	kn_strv_release(&cache_to);
	return ret;
}
