/* kiln-test-tool: drives kiln internals from shell tests and benchmarks (not installed).
 *
 *   kiln-test-tool sandbox-run [OPTIONS] -- CMD [ARG...]
 *   kiln-test-tool sandbox-bench [OPTIONS] --scratch DIR -n N -- CMD [ARG...]
 *   kiln-test-tool user-lookup [--lower DIR]... [--rootfs DIR] USER
 *
 * sandbox-run exits with the command's status, or prints "kiln-test-tool: <error>" and exits
 * 125 when the sandbox could not run it (as `docker run` does).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include "base/base.h"
#include "builder/sandbox-internal.h"

#define EXIT_TOOL 125

struct run_opts {
	struct sandbox_spec spec;
	struct kn_strv lowers;
	struct kn_strv env;
	struct kn_strv strings; /* owned pieces the mounts point into */
	struct sandbox_mount *mounts;
	size_t n_mounts;
	struct kn_strv layer_binds[8]; /* lowerdirs of --bind-layers mounts */
	size_t n_layer_binds;
	bool use_cb;
	bool no_env;
	const char *scratch;
	long runs;
	long threads;
};

static void die_err(kn_error *e)
{
	char *msg = kn_error_format(e);

	fprintf(stderr, "kiln-test-tool: %s\n", msg);
	free(msg);
	kn_error_free(e);
}

static char *keep(struct run_opts *o, char *s)
{
	kn_strv_push_owned(&o->strings, s);
	return s;
}

static struct sandbox_mount *new_mount(struct run_opts *o, enum sandbox_mount_type type)
{
	struct sandbox_mount *m;

	o->mounts = xreallocarray(o->mounts, o->n_mounts + 1, sizeof(*o->mounts));
	m = &o->mounts[o->n_mounts++];
	memset(m, 0, sizeof(*m));
	m->type = type;
	return m;
}

/* Splits "a:b[:c]" into at most 3 owned parts. */
static size_t split3(struct run_opts *o, const char *arg, char **parts)
{
	size_t n = 0;
	const char *s = arg;

	while (n < 3) {
		const char *c = n < 2 ? strchr(s, ':') : NULL;

		parts[n++] = keep(o, c ? xstrndup(s, (size_t)(c - s)) : xstrdup(s));
		if (!c)
			break;
		s = c + 1;
	}
	return n;
}

enum {
	OPT_LOWER = 256,
	OPT_UPPER,
	OPT_WORK,
	OPT_ROOTFS,
	OPT_USER,
	OPT_CWD,
	OPT_ENV,
	OPT_NO_ENV,
	OPT_HOSTNAME,
	OPT_NETWORK,
	OPT_BIND,
	OPT_TMPFS,
	OPT_SECRET,
	OPT_HOSTS,
	OPT_RESOLV,
	OPT_OUTPUT_CB,
	OPT_TMPDIR,
	OPT_PRIVILEGED,
	OPT_SECRET_OWNER,
	OPT_BIND_LAYERS,
	OPT_SCRATCH,
	OPT_THREADS,
};

static const struct option run_longopts[] = {
    {"lower", required_argument, NULL, OPT_LOWER},
    {"upper", required_argument, NULL, OPT_UPPER},
    {"work", required_argument, NULL, OPT_WORK},
    {"rootfs", required_argument, NULL, OPT_ROOTFS},
    {"user", required_argument, NULL, OPT_USER},
    {"cwd", required_argument, NULL, OPT_CWD},
    {"env", required_argument, NULL, OPT_ENV},
    {"no-env", no_argument, NULL, OPT_NO_ENV},
    {"hostname", required_argument, NULL, OPT_HOSTNAME},
    {"network", required_argument, NULL, OPT_NETWORK},
    {"bind", required_argument, NULL, OPT_BIND},
    {"tmpfs", required_argument, NULL, OPT_TMPFS},
    {"secret", required_argument, NULL, OPT_SECRET},
    {"hosts", required_argument, NULL, OPT_HOSTS},
    {"resolv-conf", required_argument, NULL, OPT_RESOLV},
    {"output-cb", no_argument, NULL, OPT_OUTPUT_CB},
    {"tmpdir", required_argument, NULL, OPT_TMPDIR},
    {"privileged", no_argument, NULL, OPT_PRIVILEGED},
    {"secret-owner", required_argument, NULL, OPT_SECRET_OWNER},
    {"bind-layers", required_argument, NULL, OPT_BIND_LAYERS},
    {"scratch", required_argument, NULL, OPT_SCRATCH},
    {"threads", required_argument, NULL, OPT_THREADS},
    {NULL, 0, NULL, 0},
};

static void run_opts_release(struct run_opts *o)
{
	kn_strv_release(&o->lowers);
	kn_strv_release(&o->env);
	kn_strv_release(&o->strings);
	for (size_t i = 0; i < o->n_layer_binds; i++)
		kn_strv_release(&o->layer_binds[i]);
	free(o->mounts);
}

/* Parses the shared options; returns the index of the command in argv, or -1. */
static int parse_run_opts(struct run_opts *o, int argc, char **argv)
{
	int c;

	sandbox_spec_init(&o->spec);
	o->spec.output_fd = 1;
	optind = 1;
	while ((c = getopt_long(argc, argv, "+n:", run_longopts, NULL)) != -1) {
		char *parts[3] = {NULL, NULL, NULL};
		struct sandbox_mount *m;
		size_t n;

		switch (c) {
		case OPT_LOWER:
			kn_strv_push(&o->lowers, optarg);
			break;
		case OPT_UPPER:
			o->spec.upperdir = optarg;
			break;
		case OPT_WORK:
			o->spec.workdir = optarg;
			break;
		case OPT_ROOTFS:
			o->spec.rootfs = optarg;
			break;
		case OPT_USER:
			o->spec.user = optarg;
			break;
		case OPT_CWD:
			o->spec.cwd = optarg;
			break;
		case OPT_ENV:
			kn_strv_push(&o->env, optarg);
			break;
		case OPT_NO_ENV:
			o->no_env = true;
			break;
		case OPT_HOSTNAME:
			o->spec.hostname = optarg;
			break;
		case OPT_NETWORK:
			if (strcmp(optarg, "host") == 0)
				o->spec.network = SANDBOX_NET_HOST;
			else if (strcmp(optarg, "none") == 0)
				o->spec.network = SANDBOX_NET_NONE;
			else {
				fprintf(stderr, "kiln-test-tool: unknown network '%s'\n", optarg);
				return -1;
			}
			break;
		case OPT_BIND: /* SRC:DST[:ro|:discard] */
			n = split3(o, optarg, parts);
			if (n < 2)
				return -1;
			m = new_mount(o, SANDBOX_MOUNT_BIND);
			m->source = parts[0];
			m->target = parts[1];
			m->readonly = n == 3 && strcmp(parts[2], "ro") == 0;
			m->discard_writes = n == 3 && strcmp(parts[2], "discard") == 0;
			break;
		case OPT_TMPFS: /* DST[:SIZE[:MODE]] */
			n = split3(o, optarg, parts);
			m = new_mount(o, SANDBOX_MOUNT_TMPFS);
			m->target = parts[0];
			if (n > 1)
				m->size = strtoull(parts[1], NULL, 10);
			if (n > 2)
				m->mode = (mode_t)strtoul(parts[2], NULL, 8);
			break;
		case OPT_SECRET: /* ID:SRC[:TARGET] */
			n = split3(o, optarg, parts);
			if (n < 2)
				return -1;
			m = new_mount(o, SANDBOX_MOUNT_SECRET);
			m->id = parts[0];
			m->source = parts[1];
			m->target = n > 2 ? parts[2] : NULL;
			break;
		case OPT_HOSTS:
			o->spec.hosts = optarg;
			break;
		case OPT_RESOLV:
			o->spec.resolv_conf = optarg;
			break;
		case OPT_OUTPUT_CB:
			o->use_cb = true;
			break;
		case OPT_TMPDIR:
			o->spec.tmpdir = optarg;
			break;
		case OPT_PRIVILEGED:
			o->spec.privileged = true;
			break;
		case OPT_BIND_LAYERS: { /* L1,L2,...:DST[:discard] (top layer first) */
			struct kn_strv *lv;
			const char *q;

			n = split3(o, optarg, parts);
			if (n < 2 || o->n_layer_binds == 8)
				return -1;
			lv = &o->layer_binds[o->n_layer_binds++];
			for (q = parts[0];;) {
				const char *comma = strchr(q, ',');

				kn_strv_push_owned(lv, comma ? xstrndup(q, (size_t)(comma - q))
							     : xstrdup(q));
				if (!comma)
					break;
				q = comma + 1;
			}
			m = new_mount(o, SANDBOX_MOUNT_BIND);
			m->target = parts[1];
			m->lowerdirs = (const char *const *)lv->v;
			m->n_lowerdirs = lv->n;
			m->readonly = !(n == 3 && strcmp(parts[2], "discard") == 0);
			m->discard_writes = !m->readonly;
			break;
		}
		case OPT_SECRET_OWNER: /* MODE:UID:GID of the last --secret */
			n = split3(o, optarg, parts);
			if (n < 3 || !o->n_mounts ||
			    o->mounts[o->n_mounts - 1].type != SANDBOX_MOUNT_SECRET)
				return -1;
			m = &o->mounts[o->n_mounts - 1];
			m->mode = (mode_t)strtoul(parts[0], NULL, 8);
			m->uid = (uid_t)strtoul(parts[1], NULL, 10);
			m->gid = (gid_t)strtoul(parts[2], NULL, 10);
			break;
		case OPT_SCRATCH:
			o->scratch = optarg;
			break;
		case OPT_THREADS:
			o->threads = strtol(optarg, NULL, 10);
			break;
		case 'n':
			o->runs = strtol(optarg, NULL, 10);
			break;
		default:
			return -1;
		}
	}
	if (optind >= argc) {
		fprintf(stderr, "kiln-test-tool: no command given\n");
		return -1;
	}
	o->spec.lowerdirs = (const char *const *)o->lowers.v;
	o->spec.n_lowerdirs = o->lowers.n;
	if (!o->no_env && !o->env.n)
		kn_strv_push(&o->env,
			     "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
	kn_strv_push(&o->env, "KILN_TEST=1");
	o->spec.env = (const char *const *)o->env.v;
	o->spec.mounts = o->mounts;
	o->spec.n_mounts = o->n_mounts;
	o->spec.argv = (const char *const *)argv + optind;
	return optind;
}

static void write_stdout(const char *data, size_t len, void *unused)
{
	(void)unused;
	if (fwrite(data, 1, len, stdout) != len)
		return;
	fflush(stdout);
}

static int cmd_sandbox_run(int argc, char **argv)
{
	struct run_opts o = {0};
	kn_error *err = NULL;
	int status = 0, r;

	if (parse_run_opts(&o, argc, argv) < 0) {
		run_opts_release(&o);
		return 2;
	}
	if (o.use_cb) {
		o.spec.output_fd = -1;
		o.spec.output_cb = write_stdout;
	}
	fflush(stdout);
	r = sandbox_run(&o.spec, &status, &err);
	run_opts_release(&o);
	if (r < 0) {
		die_err(err);
		return EXIT_TOOL;
	}
	return status;
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

struct bench_worker {
	const struct run_opts *o;
	long id;
	double total, min, max;
	int rc;
};

static void *bench_thread(void *arg)
{
	struct bench_worker *w = arg;
	struct sandbox_spec spec = w->o->spec;

	w->min = 1e18;
	for (long i = 0; i < w->o->runs; i++) {
		_cleanup_free_ char *upper = xasprintf("%s/upper%ld-%ld", w->o->scratch, w->id, i);
		_cleanup_free_ char *work = xasprintf("%s/work%ld-%ld", w->o->scratch, w->id, i);
		kn_error *err = NULL;
		int status = 0;
		double t0, dt;

		if (kn_mkdir_p(upper, 0755, &err) < 0 || kn_mkdir_p(work, 0755, &err) < 0) {
			die_err(err);
			w->rc = EXIT_TOOL;
			break;
		}
		if (spec.n_lowerdirs) {
			spec.upperdir = upper;
			spec.workdir = work;
		}
		t0 = now_ms();
		if (sandbox_run(&spec, &status, &err) < 0) {
			die_err(err);
			w->rc = EXIT_TOOL;
			break;
		}
		dt = now_ms() - t0;
		w->total += dt;
		w->min = dt < w->min ? dt : w->min;
		w->max = dt > w->max ? dt : w->max;
		if (status != 0) {
			fprintf(stderr, "kiln-test-tool: command exited %d\n", status);
			w->rc = 1;
			break;
		}
		(void)kn_rm_rf(upper, NULL);
		(void)kn_rm_rf(work, NULL);
	}
	return NULL;
}

/* Runs the command -n times (in each of --threads threads at once), with fresh upper/work dirs. */
static int cmd_sandbox_bench(int argc, char **argv)
{
	struct run_opts o = {0};
	struct bench_worker *w;
	pthread_t *tids;
	double total = 0, min = 1e18, max = 0;
	int rc = 0;

	o.runs = 20;
	o.threads = 1;
	if (parse_run_opts(&o, argc, argv) < 0 || !o.scratch || o.runs <= 0 || o.threads <= 0 ||
	    o.threads > 64) {
		fprintf(stderr, "kiln-test-tool: sandbox-bench needs --scratch DIR, -n N and "
				"--threads 1..64\n");
		run_opts_release(&o);
		return 2;
	}
	o.spec.output_fd = -1;
	w = xcalloc((size_t)o.threads, sizeof(*w));
	tids = xcalloc((size_t)o.threads, sizeof(*tids));
	for (long t = 0; t < o.threads; t++) {
		w[t].o = &o;
		w[t].id = t;
		if (pthread_create(&tids[t], NULL, bench_thread, &w[t]) != 0) {
			fprintf(stderr, "kiln-test-tool: pthread_create failed\n");
			abort();
		}
	}
	for (long t = 0; t < o.threads; t++) {
		pthread_join(tids[t], NULL);
		rc = rc ? rc : w[t].rc;
		total += w[t].total;
		min = w[t].min < min ? w[t].min : min;
		max = w[t].max > max ? w[t].max : max;
	}
	if (rc == 0)
		printf("runs=%ld threads=%ld mean_ms=%.2f min_ms=%.2f max_ms=%.2f\n",
		       o.runs * o.threads, o.threads, total / (double)(o.runs * o.threads), min,
		       max);
	free(w);
	free(tids);
	run_opts_release(&o);
	return rc;
}

static int cmd_user_lookup(int argc, char **argv)
{
	struct kn_strv lowers = KN_STRV_INIT;
	const char *rootfs = NULL;
	struct sandbox_user u = {0};
	kn_error *err = NULL;
	int c, r;

	optind = 1;
	while ((c = getopt_long(argc, argv, "+", run_longopts, NULL)) != -1) {
		if (c == OPT_LOWER)
			kn_strv_push(&lowers, optarg);
		else if (c == OPT_ROOTFS)
			rootfs = optarg;
		else {
			kn_strv_release(&lowers);
			return 2;
		}
	}
	if (optind != argc - 1) {
		fprintf(stderr,
			"usage: kiln-test-tool user-lookup [--lower DIR]... [--rootfs DIR] USER\n");
		kn_strv_release(&lowers);
		return 2;
	}
	r = sandbox_user_lookup((const char *const *)lowers.v, lowers.n, rootfs, argv[optind], &u,
				&err);
	kn_strv_release(&lowers);
	if (r < 0) {
		die_err(err);
		return 1;
	}
	printf("uid=%u gid=%u groups=", (unsigned int)u.uid, (unsigned int)u.gid);
	for (size_t i = 0; i < u.n_gids; i++)
		printf("%s%u", i ? "," : "", (unsigned int)u.gids[i]);
	printf(" home=%s\n", u.home);
	sandbox_user_release(&u);
	return 0;
}

static const struct {
	const char *name;
	int (*fn)(int argc, char **argv);
} commands[] = {
    {"sandbox-run", cmd_sandbox_run},
    {"sandbox-bench", cmd_sandbox_bench},
    {"user-lookup", cmd_user_lookup},
};

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: kiln-test-tool <command> [args]\n");
		return 2;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].fn(argc - 1, argv + 1);
	}
	fprintf(stderr, "kiln-test-tool: unknown command '%s'\n", argv[1]);
	return 2;
}
