/* kiln build: builds an image from a Dockerfile and a context (arguments and printing only). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "builder/builder.h"
#include "cli/cli.h"
#include "registry/registry.h"

static const char build_usage[] =
	"Usage: kiln build [OPTIONS] CONTEXT\n"
	"\n"
	"Builds an image from a Dockerfile. CONTEXT is a directory, or '-' to read a tar of the\n"
	"context (or a bare Dockerfile) from stdin. The image ID is printed last on stdout.\n"
	"\n"
	"Options:\n"
	"  -t, --tag NAME            name the result (repeatable)\n"
	"  -f, --file FILE           the Dockerfile ('-' for stdin; default CONTEXT/Dockerfile)\n"
	"      --target STAGE        build this stage instead of the last one\n"
	"      --build-arg K[=V]     set a build-time variable (repeatable; K alone takes $K)\n"
	"      --label K=V           add a label to the image (repeatable)\n"
	"      --no-cache            do not use the build cache\n"
	"      --pull[=POLICY]       pull base images: missing (default), always, never\n"
	"      --iidfile FILE        write the image ID to FILE\n"
	"  -q, --quiet               print only the image ID\n"
	"      --progress MODE       auto, plain, tty or quiet (default auto)\n"
	"      --network MODE        RUN network: default, none or host\n"
	"      --format FORMAT       oci (default) or docker\n"
	"      --compression ALGO    gzip (default), zstd or none\n"
	"      --secret id=ID,src=PATH  expose a secret to RUN --mount=type=secret (repeatable)\n"
	"      --push                push every -t name to its registry after the build\n"
	"      --tls-verify[=BOOL]   with --push: verify TLS certificates (default true; false\n"
	"                            also allows plain HTTP)\n"
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
	OPT_SECRET,
	OPT_PUSH,
	OPT_TLS_VERIFY,
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
	{ "secret", required_argument, NULL, OPT_SECRET },
	{ "push", no_argument, NULL, OPT_PUSH },
	{ "tls-verify", optional_argument, NULL, OPT_TLS_VERIFY },
	{ "help", no_argument, NULL, 'h' },
	CLI_OPT_ROOT_ENTRY,
	{ NULL, 0, NULL, 0 },
};

/* ---- progress display ---------------------------------------------------------------------- */

struct tty_step {
	char *title;
	char *status; /* NULL while running, else "CACHED" / "0.12s" */
	unsigned long long started_ns;
};

struct progress {
	enum bld_progress_mode mode;
	FILE *out;
	unsigned long long start_ns;
	/* plain: a partial output line waiting for its newline, and the step last shown */
	struct kn_buf partial;
	int last_stage, last_step;
	/* tty */
	struct tty_step *steps;
	size_t n_steps, alloc_steps;
	struct kn_buf tail; /* last output bytes of the running step */
	int drawn_lines;
	unsigned long long last_draw_ns;
	int width;
};

static unsigned long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (unsigned long long)ts.tv_sec * 1000000000ULL + (unsigned long long)ts.tv_nsec;
}

static char *step_title(const struct bld_event *ev)
{
	struct kn_buf b = KN_BUF_INIT;

	kn_buf_addf(&b, "[stage %d/%d", ev->stage_index, ev->stage_count);
	if (ev->stage_name && *ev->stage_name)
		kn_buf_addf(&b, " %s", ev->stage_name);
	kn_buf_addf(&b, "] [%d/%d] %s", ev->step_index, ev->step_count, ev->text ? ev->text : "");
	return kn_buf_detach(&b);
}

static void plain_flush_partial(struct progress *p)
{
	if (p->partial.len) {
		fprintf(p->out, "    %s\n", p->partial.buf);
		kn_buf_reset(&p->partial);
	}
}

static void plain_output(struct progress *p, const char *data, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (data[i] == '\n') {
			fprintf(p->out, "    %s\n", p->partial.buf);
			kn_buf_reset(&p->partial);
		} else if (data[i] != '\r') {
			kn_buf_addch(&p->partial, (unsigned char)data[i]);
		}
	}
}

static void tty_draw(struct progress *p, bool force)
{
	unsigned long long t = now_ns();
	size_t first = 0;
	int lines = 0;

	if (!force && t - p->last_draw_ns < 50000000ULL)
		return;
	p->last_draw_ns = t;
	if (p->drawn_lines)
		fprintf(p->out, "\033[%dA", p->drawn_lines);
	fputs("\r\033[J", p->out);
	fprintf(p->out, "[+] Building %.1fs\n", (double)(t - p->start_ns) / 1e9);
	lines++;
	/* Compact: only the last 12 steps are shown. */
	if (p->n_steps > 12)
		first = p->n_steps - 12;
	for (size_t i = first; i < p->n_steps; i++) {
		struct tty_step *s = &p->steps[i];
		_cleanup_free_ char *st = NULL;

		if (s->status)
			st = xstrdup(s->status);
		else
			st = xasprintf("%.1fs", (double)(t - s->started_ns) / 1e9);
		fprintf(p->out, " => %-.*s %s\n", p->width > 20 ? p->width - 14 : 60, s->title, st);
		lines++;
	}
	if (p->n_steps && !p->steps[p->n_steps - 1].status && p->tail.len) {
		/* The last 4 lines of the running step's output, dimmed. */
		const char *e = p->tail.buf + p->tail.len;
		const char *s = e;
		int nl = 0;

		while (s > p->tail.buf && nl < 5) {
			s--;
			if (*s == '\n' && ++nl == 5) {
				s++;
				break;
			}
		}
		for (const char *q = s; q < e;) {
			const char *eol = memchr(q, '\n', (size_t)(e - q));
			size_t n = eol ? (size_t)(eol - q) : (size_t)(e - q);

			if (n) {
				fprintf(p->out, "\033[2m => > %.*s\033[0m\n",
					(int)(n > (size_t)(p->width > 20 ? p->width - 8 : 70) ? (size_t)(p->width > 20 ? p->width - 8 : 70) : n), q);
				lines++;
			}
			q += n + (eol ? 1 : 0);
		}
	}
	p->drawn_lines = lines;
	fflush(p->out);
}

static void progress_cb(const struct bld_event *ev, void *userdata)
{
	struct progress *p = userdata;
	_cleanup_free_ char *title = NULL;

	if (p->mode == BLD_PROGRESS_QUIET)
		return;
	if (p->mode == BLD_PROGRESS_PLAIN) {
		/* Concurrent stages interleave: an event of another step than the one shown last
		 * repeats that step's header first. */
		if (ev->kind != BLD_EV_STEP_START && ev->kind != BLD_EV_WARNING && ev->kind != BLD_EV_INFO &&
		    (ev->stage_index != p->last_stage || ev->step_index != p->last_step)) {
			plain_flush_partial(p);
			fprintf(p->out, "[stage %d/%d%s%s] [%d/%d]\n", ev->stage_index, ev->stage_count,
				ev->stage_name ? " " : "", ev->stage_name ? ev->stage_name : "", ev->step_index,
				ev->step_count);
			p->last_stage = ev->stage_index;
			p->last_step = ev->step_index;
		}
		switch (ev->kind) {
		case BLD_EV_STEP_START:
			plain_flush_partial(p);
			title = step_title(ev);
			fprintf(p->out, "%s\n", title);
			p->last_stage = ev->stage_index;
			p->last_step = ev->step_index;
			break;
		case BLD_EV_STEP_OUTPUT:
			plain_output(p, ev->data, ev->len);
			break;
		case BLD_EV_STEP_CACHED:
			plain_flush_partial(p);
			fprintf(p->out, "    CACHED\n");
			break;
		case BLD_EV_STEP_DONE:
			plain_flush_partial(p);
			fprintf(p->out, "    DONE %.3fs\n", (double)ev->duration_ns / 1e9);
			break;
		case BLD_EV_WARNING:
			plain_flush_partial(p);
			fprintf(p->out, "WARNING: %s\n", ev->text);
			break;
		case BLD_EV_INFO:
			plain_flush_partial(p);
			fprintf(p->out, "%s\n", ev->text);
			break;
		}
		fflush(p->out);
		return;
	}
	/* tty */
	switch (ev->kind) {
	case BLD_EV_STEP_START:
		KN_GROW(p->steps, p->alloc_steps, p->n_steps + 1);
		p->steps[p->n_steps].title = step_title(ev);
		p->steps[p->n_steps].status = NULL;
		p->steps[p->n_steps].started_ns = now_ns();
		p->n_steps++;
		kn_buf_reset(&p->tail);
		tty_draw(p, true);
		break;
	case BLD_EV_STEP_OUTPUT:
		kn_buf_add(&p->tail, ev->data, ev->len);
		if (p->tail.len > 8192) {
			memmove(p->tail.buf, p->tail.buf + p->tail.len - 4096, 4096);
			kn_buf_setlen(&p->tail, 4096);
		}
		tty_draw(p, false);
		break;
	case BLD_EV_STEP_CACHED:
	case BLD_EV_STEP_DONE:
		if (p->n_steps) {
			struct tty_step *s = &p->steps[p->n_steps - 1];

			free(s->status);
			s->status = ev->kind == BLD_EV_STEP_CACHED
					    ? xstrdup("CACHED")
					    : xasprintf("%.2fs", (double)ev->duration_ns / 1e9);
		}
		kn_buf_reset(&p->tail);
		tty_draw(p, true);
		break;
	case BLD_EV_WARNING:
	case BLD_EV_INFO:
		/* Printed above the live view: it scrolls away with the log. */
		if (p->drawn_lines)
			fprintf(p->out, "\033[%dA\r\033[J", p->drawn_lines);
		p->drawn_lines = 0;
		fprintf(p->out, "%s%s\n", ev->kind == BLD_EV_WARNING ? "WARNING: " : "", ev->text);
		tty_draw(p, true);
		break;
	}
}

static void progress_release(struct progress *p)
{
	for (size_t i = 0; i < p->n_steps; i++) {
		free(p->steps[i].title);
		free(p->steps[i].status);
	}
	free(p->steps);
	kn_buf_release(&p->tail);
	kn_buf_release(&p->partial);
}

/* ---- stdin context --------------------------------------------------------------------------- */

/* A tar (ustar magic) or a compressed stream (gzip, bzip2, xz, zstd) rather than a Dockerfile. */
static bool looks_like_archive(const unsigned char *b, size_t n)
{
	if (n >= 2 && b[0] == 0x1f && b[1] == 0x8b)
		return true;
	if (n >= 3 && !memcmp(b, "BZh", 3))
		return true;
	if (n >= 6 && !memcmp(b, "\xfd" "7zXZ\0", 6))
		return true;
	if (n >= 4 && !memcmp(b, "\x28\xb5\x2f\xfd", 4))
		return true;
	if (n >= 262 && !memcmp(b + 257, "ustar", 5))
		return true;
	return false;
}

/*
 * Reads stdin: a bare Dockerfile lands in *dockerfile; an archive is spooled to an unlinked temp
 * file whose fd is returned in *ret_fd (libarchive needs to re-read from the start).
 */
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
	if (!looks_like_archive((const unsigned char *)head.buf, head.len)) {
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
static int push_tags(const char *image_id, char *const *tags, int tls_verify, FILE *out, kn_error **err)
{
	struct reg_push_opts po;

	reg_push_opts_init(&po);
	po.root = cli_root();
	po.tls_verify = tls_verify;
	po.progress = cli_push_progress;
	po.progress_data = out;
	for (size_t i = 0; tags[i]; i++) {
		struct reg_push_result res = { 0 };

		if (reg_push(tags[i], NULL, &po, &res, err) < 0)
			return kn_error_wrap(err, "push of '%s' failed (the image %s stays in the local store)",
					     tags[i], image_id);
		if (out)
			fprintf(out, "%s: digest: %s size: %llu\n", res.tag ? res.tag : res.digest, res.digest,
				(unsigned long long)res.size);
		reg_push_result_release(&res);
	}
	return 0;
}

/* ---- the command --------------------------------------------------------------------------- */

int cmd_build(int argc, char **argv)
{
	struct kn_strv tags = KN_STRV_INIT, build_args = KN_STRV_INIT, labels = KN_STRV_INIT;
	struct kn_strv secrets = KN_STRV_INIT;
	struct kn_buf dockerfile = KN_BUF_INIT;
	struct bld_options o;
	struct progress prog = { 0 };
	const char *file = NULL, *iidfile = NULL, *context;
	bool quiet = false, df_from_stdin = false, push = false;
	int tls_verify = -1;
	_cleanup_free_ char *image_id = NULL;
	_cleanup_close_ int ctx_fd = -1;
	kn_error *err = NULL;
	int ret = CLI_EXIT_FAIL, c;

	bld_options_init(&o);
	o.progress = progress_cb;
	o.progress_data = &prog;
	prog.mode = BLD_PROGRESS_AUTO;
	kn_buf_init(&prog.partial);
	kn_buf_init(&prog.tail);

	while ((c = cli_getopt("build", argc, argv, ":t:f:qh", build_options)) != -1) {
		switch (c) {
		case 't':
			kn_strv_push(&tags, optarg);
			break;
		case 'f':
			file = optarg;
			break;
		case OPT_TARGET:
			o.target = optarg;
			break;
		case OPT_BUILD_ARG:
			kn_strv_push(&build_args, optarg);
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
			if (!strcmp(optarg, "auto"))
				prog.mode = BLD_PROGRESS_AUTO;
			else if (!strcmp(optarg, "plain"))
				prog.mode = BLD_PROGRESS_PLAIN;
			else if (!strcmp(optarg, "tty"))
				prog.mode = BLD_PROGRESS_TTY;
			else if (!strcmp(optarg, "quiet"))
				prog.mode = BLD_PROGRESS_QUIET;
			else {
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
		case CLI_OPT_ROOT:
			cli_set_root(optarg);
			break;
		case 'h':
			fputs(build_usage, stdout);
			ret = CLI_EXIT_OK;
			goto out;
		default:
			ret = CLI_EXIT_USAGE;
			goto out;
		}
	}
	if (optind + 1 != argc) {
		ret = cli_usage_error("build", optind >= argc ? "missing CONTEXT" : "too many arguments");
		goto out;
	}
	if (push && !tags.n) {
		ret = cli_usage_error("build", "--push needs at least one -t NAME");
		goto out;
	}
	context = argv[optind];
	if (quiet)
		prog.mode = BLD_PROGRESS_QUIET;
	if (prog.mode == BLD_PROGRESS_AUTO)
		prog.mode = isatty(STDERR_FILENO) ? BLD_PROGRESS_TTY : BLD_PROGRESS_PLAIN;
	prog.out = stderr;
	prog.start_ns = now_ns();
	prog.width = 100;
	if (prog.mode == BLD_PROGRESS_TTY) {
		struct winsize ws;

		if (!ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) && ws.ws_col > 20)
			prog.width = ws.ws_col;
	}

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

	if (bld_build(&o, &image_id, &err) < 0) {
		if (prog.mode == BLD_PROGRESS_PLAIN)
			plain_flush_partial(&prog);
		ret = cli_fail(err);
		goto out;
	}
	if (prog.mode == BLD_PROGRESS_TTY)
		tty_draw(&prog, true);
	if (prog.mode != BLD_PROGRESS_QUIET) {
		fprintf(stderr, "Built %s in %.2fs\n", image_id, (double)(now_ns() - prog.start_ns) / 1e9);
		for (size_t i = 0; i < tags.n; i++)
			fprintf(stderr, "Tagged %s\n", tags.v[i]);
	}
	if (iidfile &&
	    kn_write_file_atomic(iidfile, image_id, strlen(image_id), 0644, &err) < 0) {
		ret = cli_fail(err);
		goto out;
	}
	if (push && push_tags(image_id, tags.v, tls_verify, prog.mode == BLD_PROGRESS_QUIET ? NULL : stderr, &err) < 0) {
		ret = cli_fail(err);
		goto out;
	}
	printf("%s\n", image_id);
	ret = fflush(stdout) ? CLI_EXIT_FAIL : CLI_EXIT_OK;
out:
	progress_release(&prog);
	kn_buf_release(&dockerfile);
	kn_strv_release(&tags);
	kn_strv_release(&build_args);
	kn_strv_release(&labels);
	kn_strv_release(&secrets);
	return ret;
}
