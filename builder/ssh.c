/* kiln builder: --ssh ID=SOCKET|KEY[,KEY] for RUN --mount=type=ssh. A socket is an ssh-agent
 * forwarded as it is; key files are loaded into a private ssh-agent that lives for the build
 * (BuildKit serves keys from an agent of its own the same way). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "builder/build-internal.h"

struct bld_ssh {
	char *id;
	char *sock;  /* the agent socket to forward */
	char *dir;   /* private agent: its directory (removed at the end), else NULL */
	pid_t agent; /* private agent: its pid, else 0 */
};

/* Starts `ssh-agent -D -a SOCK` in a fresh directory and loads the keys with ssh-add. */
static int agent_start(struct bld_ssh *s, char *const *keys, kn_error **err)
{
	const char *tmp = getenv("TMPDIR");
	_cleanup_free_ char *env_sock = NULL;
	struct stat st;
	pid_t pid;

	/* A short path: a unix socket path has at most 107 bytes. */
	s->dir = xasprintf("%s/kiln-ssh-XXXXXX", tmp && *tmp && strlen(tmp) < 60 ? tmp : "/tmp");
	if (!mkdtemp(s->dir)) {
		int r = kn_error_errno(err, "--ssh %s: cannot create '%s'", s->id, s->dir);

		free(s->dir);
		s->dir = NULL;
		return r;
	}
	s->sock = kn_path_join(s->dir, "agent.sock");
	pid = fork();
	if (pid < 0)
		return kn_error_errno(err, "--ssh %s: fork", s->id);
	if (pid == 0) {
		const char *argv[] = { "ssh-agent", "-D", "-a", s->sock, NULL };
		int null = open("/dev/null", O_RDWR);

		if (null < 0 || dup2(null, 0) < 0 || dup2(null, 1) < 0 || dup2(null, 2) < 0)
			_exit(127);
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}
	s->agent = pid;
	for (int i = 0; i < 500; i++) {
		int status;
		struct timespec ts = { 0, 10 * 1000 * 1000 };

		if (stat(s->sock, &st) == 0 && S_ISSOCK(st.st_mode))
			break;
		if (waitpid(pid, &status, WNOHANG) == pid) {
			s->agent = 0;
			return kn_error_set(err, ENOENT, "--ssh %s: ssh-agent did not start (is openssh-client installed?)",
					    s->id);
		}
		nanosleep(&ts, NULL);
	}
	if (stat(s->sock, &st) < 0)
		return kn_error_set(err, ETIMEDOUT, "--ssh %s: ssh-agent did not start", s->id);
	env_sock = xasprintf("SSH_AUTH_SOCK=%s", s->sock);
	for (size_t i = 0; keys[i]; i++) {
		const char *argv[] = { "ssh-add", "-q", keys[i], NULL };
		const char *env[] = { env_sock, "SSH_ASKPASS_REQUIRE=never", "DISPLAY=", NULL };

		if (bld_exec(NULL, argv, env, NULL, err) < 0)
			return kn_error_wrap(err, "--ssh %s: cannot load the key '%s'", s->id, keys[i]);
	}
	return 0;
}

int bld_ssh_setup(struct bld *b, kn_error **err)
{
	for (size_t i = 0; b->o->ssh && b->o->ssh[i]; i++) {
		const char *spec = b->o->ssh[i], *eq = strchr(spec, '=');
		struct bld_ssh *s;
		struct kn_strv keys = KN_STRV_INIT;
		struct stat st;
		int r = 0;

		if (!eq || eq == spec || !eq[1])
			return kn_error_set(err, EINVAL, "invalid --ssh '%s': expected ID=SOCKET|KEY[,KEY]", spec);
		KN_GROW(b->ssh, b->alloc_ssh, b->n_ssh + 1);
		s = &b->ssh[b->n_ssh++];
		memset(s, 0, sizeof(*s));
		s->id = xstrndup(spec, (size_t)(eq - spec));
		for (const char *p = eq + 1; *p;) {
			size_t n = strcspn(p, ",");

			if (n)
				kn_strv_push_owned(&keys, xstrndup(p, n));
			p += n;
			if (*p)
				p++;
		}
		if (keys.n == 1 && stat(keys.v[0], &st) == 0 && S_ISSOCK(st.st_mode)) {
			s->sock = xstrdup(keys.v[0]);
		} else {
			for (size_t k = 0; k < keys.n && r == 0; k++)
				if (stat(keys.v[k], &st) < 0 || !S_ISREG(st.st_mode))
					r = kn_error_errno(err, "--ssh %s: '%s' is neither an ssh-agent socket nor a key file",
							   s->id, keys.v[k]);
			if (r == 0)
				r = agent_start(s, keys.v, err);
		}
		kn_strv_release(&keys);
		if (r < 0)
			return -1;
	}
	return 0;
}

const char *bld_ssh_socket(const struct bld *b, const char *id)
{
	for (size_t i = 0; i < b->n_ssh; i++)
		if (!strcmp(b->ssh[i].id, id))
			return b->ssh[i].sock;
	return NULL;
}

void bld_ssh_release(struct bld *b)
{
	for (size_t i = 0; i < b->n_ssh; i++) {
		struct bld_ssh *s = &b->ssh[i];

		if (s->agent > 0) {
			kill(s->agent, SIGTERM);
			while (waitpid(s->agent, NULL, 0) < 0 && errno == EINTR)
				;
		}
		if (s->dir)
			(void)kn_rm_rf(s->dir, NULL);
		free(s->dir);
		free(s->sock);
		free(s->id);
	}
	free(b->ssh);
	b->ssh = NULL;
	b->n_ssh = b->alloc_ssh = 0;
}
