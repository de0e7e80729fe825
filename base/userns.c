/* kiln base: entering a user namespace for rootless operation (see userns.h). */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/base.h"
#include "base/userns.h"

#define SUBID_FILE_MAX (1u << 20)
#define SUBID_MAX_RANGES 64

struct subid_range {
	unsigned long start, count;
};

static uid_t host_uid = (uid_t)-1;
static char *host_user;
/* The user has subordinate IDs but newuidmap/newgidmap were not found. */
static bool no_map_tools;

uid_t kn_userns_host_uid(void)
{
	return host_uid != (uid_t)-1 ? host_uid : geteuid();
}

/* Sums the counts of /proc/self/{uid,gid}_map; *identity when it is the initial namespace's. */
static unsigned long map_count(const char *path, bool *identity)
{
	struct kn_buf b = KN_BUF_INIT;
	kn_error *e = NULL;
	unsigned long total = 0;
	const char *p;

	*identity = true;
	if (kn_read_file(path, 65536, &b, &e) < 0) {
		kn_error_free(e);
		kn_buf_release(&b);
		return 0;
	}
	p = b.buf ? b.buf : "";
	*identity = false;
	for (;;) {
		unsigned long in, out, count;
		int n = 0;

		if (sscanf(p, " %lu %lu %lu%n", &in, &out, &count, &n) != 3)
			break;
		if (in == 0 && out == 0 && count == 4294967295ul)
			*identity = true;
		total += count;
		p += n;
	}
	kn_buf_release(&b);
	return total;
}

static int userns_state = -1; /* -1 unknown, 0 initial namespace, 1 in a user namespace */
static unsigned long mapped_ids;

static void userns_probe(void)
{
	bool uid_identity, gid_identity;
	unsigned long u, g;

	if (__atomic_load_n(&userns_state, __ATOMIC_ACQUIRE) >= 0)
		return;
	u = map_count("/proc/self/uid_map", &uid_identity);
	g = map_count("/proc/self/gid_map", &gid_identity);
	mapped_ids = uid_identity ? 0 : (u < g ? u : g);
	__atomic_store_n(&userns_state, uid_identity ? 0 : 1, __ATOMIC_RELEASE);
}

bool kn_userns_active(void)
{
	userns_probe();
	return userns_state == 1;
}

unsigned long kn_userns_mapped_ids(void)
{
	userns_probe();
	return mapped_ids;
}

char *kn_userns_unmapped_hint(unsigned long id)
{
	const char *user = host_user ? host_user : "USER";
	_cleanup_free_ char *which = NULL;

	if (!kn_userns_active() || (id != KN_USERNS_SOME_ID && id < kn_userns_mapped_ids()))
		return xstrdup("");
	which = id == KN_USERNS_SOME_ID ? xstrdup("an ID") : xasprintf("ID %lu", id);
	if (kn_userns_mapped_ids() <= 1 && no_map_tools)
		return xasprintf(" (rootless kiln maps only uid and gid 0 here: user '%s' has "
				 "subordinate IDs, but newuidmap and newgidmap are not installed; as "
				 "root, run: apt-get install uidmap)",
				 user);
	if (kn_userns_mapped_ids() <= 1 && id == KN_USERNS_SOME_ID)
		return xasprintf(
		    " (rootless kiln has only uid and gid 0 here: user '%s' has no subordinate IDs in "
		    "/etc/subuid and /etc/subgid; for steps that need other IDs, as root, run: usermod "
		    "--add-subuids 100000-165535 --add-subgids 100000-165535 %s)",
		    user, user);
	if (kn_userns_mapped_ids() <= 1)
		return xasprintf(
		    " (%s does not exist in kiln's user namespace: user '%s' has no subordinate IDs "
		    "in /etc/subuid and /etc/subgid, so only their own ID is mapped, to root; as root, "
		    "run: usermod --add-subuids 100000-165535 --add-subgids 100000-165535 %s)",
		    which, user, user);
	return xasprintf(" (%s is outside the %lu IDs mapped in kiln's user namespace from the "
			 "ranges of user '%s' in /etc/subuid and /etc/subgid; give a larger range, "
			 "as root: usermod --add-subuids 100000-165535 --add-subgids 100000-165535 %s)",
			 which, kn_userns_mapped_ids(), user, user);
}

/* The ranges that path ("name:start:count" lines) gives the user (by name or by uid). */
static size_t subid_ranges(const char *path, const char *name, uid_t uid,
			   struct subid_range *ret, size_t max)
{
	struct kn_buf b = KN_BUF_INIT;
	kn_error *e = NULL;
	char uidstr[24];
	size_t n = 0;
	char *line, *save = NULL;

	snprintf(uidstr, sizeof(uidstr), "%lu", (unsigned long)uid);
	if (kn_read_file(path, SUBID_FILE_MAX, &b, &e) < 0) {
		kn_error_free(e);
		kn_buf_release(&b);
		return 0;
	}
	for (line = strtok_r(b.buf ? b.buf : (char *)"", "\n", &save); line && n < max;
	     line = strtok_r(NULL, "\n", &save)) {
		char *c1 = strchr(line, ':'), *c2, *end1, *end2;
		unsigned long start, count;

		if (!c1 || line[0] == '#')
			continue;
		*c1 = '\0';
		if (strcmp(line, name ? name : "") && strcmp(line, uidstr))
			continue;
		c2 = strchr(c1 + 1, ':');
		if (!c2)
			continue;
		errno = 0;
		start = strtoul(c1 + 1, &end1, 10);
		count = strtoul(c2 + 1, &end2, 10);
		if (errno || end1 != c2 || end2 == c2 + 1 || count == 0)
			continue;
		ret[n].start = start;
		ret[n].count = count;
		n++;
	}
	kn_buf_release(&b);
	return n;
}

/* An executable named name in PATH or the usual system directories; owned, NULL if none. */
static char *find_tool(const char *name)
{
	const char *path = getenv("PATH");
	struct kn_buf dirs = KN_BUF_INIT;
	char *found = NULL, *save = NULL;

	kn_buf_addf(&dirs, "%s:/usr/bin:/bin:/usr/sbin:/sbin", path ? path : "");
	for (char *d = strtok_r(dirs.buf, ":", &save); d && !found; d = strtok_r(NULL, ":", &save)) {
		char *p = xasprintf("%s/%s", d, name);

		if (*d == '/' && access(p, X_OK) == 0)
			found = p;
		else
			free(p);
	}
	kn_buf_release(&dirs);
	return found;
}

/* argv of "newuidmap PID 0 ID 1 1 START COUNT ..." (owned strv). */
static char **map_argv(const char *tool, pid_t pid, unsigned long id, const struct subid_range *r,
		       size_t n)
{
	struct kn_strv v = KN_STRV_INIT;
	unsigned long inside = 1;

	kn_strv_push(&v, tool);
	kn_strv_pushf(&v, "%ld", (long)pid);
	kn_strv_pushf(&v, "0");
	kn_strv_pushf(&v, "%lu", id);
	kn_strv_pushf(&v, "1");
	for (size_t i = 0; i < n; i++) {
		kn_strv_pushf(&v, "%lu", inside);
		kn_strv_pushf(&v, "%lu", r[i].start);
		kn_strv_pushf(&v, "%lu", r[i].count);
		inside += r[i].count;
	}
	return kn_strv_detach(&v);
}

/* In the helper: runs argv with stderr on errfd, returns its exit status (127: not run). */
static int run_tool(char **argv, int errfd)
{
	int status;
	pid_t pid = fork();

	if (pid < 0)
		return 127;
	if (pid == 0) {
		(void)dup2(errfd, 1);
		(void)dup2(errfd, 2);
		execv(argv[0], argv);
		_exit(127);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return 127;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 127;
}

static int write_proc(const char *file, const char *data, kn_error **err)
{
	_cleanup_close_ int fd = open(file, O_WRONLY | O_CLOEXEC);

	if (fd < 0 || kn_write_all(fd, data, strlen(data), NULL) < 0)
		return kn_error_errno(err, "rootless: write '%s'", file);
	return 0;
}

static int unshare_error(int e, kn_error **err)
{
	struct kn_buf b = KN_BUF_INIT;
	kn_error *ignored = NULL;
	const char *why;

	if (e == ENOSPC || (kn_read_file("/proc/sys/user/max_user_namespaces", 64, &b, &ignored) == 0 &&
			    b.len && strtol(b.buf, NULL, 10) == 0))
		why = "the limit of user namespaces is reached or 0: as root, run "
		      "'sysctl -w user.max_user_namespaces=28633'";
	else
		why = "unprivileged user namespaces are refused here: on the host, as root, run "
		      "'sysctl -w kernel.unprivileged_userns_clone=1' (Debian) or "
		      "'sysctl -w kernel.apparmor_restrict_unprivileged_userns=0' (Ubuntu); in a "
		      "container or pod, run it with the seccomp and AppArmor profiles Unconfined "
		      "(see 'Without root' in kiln-build(1)), or run kiln as root";
	kn_error_free(ignored);
	kn_buf_release(&b);
	errno = e;
	return kn_error_errno(err, "rootless: cannot create a user namespace (%s)", why);
}

int kn_userns_enter(kn_error **err)
{
	struct subid_range uids[SUBID_MAX_RANGES], gids[SUBID_MAX_RANGES];
	size_t n_uids = 0, n_gids = 0;
	_cleanup_free_ char *newuidmap = NULL, *newgidmap = NULL;
	uid_t uid = geteuid();
	gid_t gid = getegid();
	const struct passwd *pw;
	int go[2] = { -1, -1 }, out[2] = { -1, -1 };
	pid_t helper = -1;
	int r = -1;

	if (uid == 0)
		return 0;
	host_uid = uid;
	pw = getpwuid(uid);
	free(host_user);
	host_user = pw ? xstrdup(pw->pw_name) : xasprintf("%lu", (unsigned long)uid);
	n_uids = subid_ranges("/etc/subuid", host_user, uid, uids, SUBID_MAX_RANGES);
	n_gids = subid_ranges("/etc/subgid", host_user, uid, gids, SUBID_MAX_RANGES);
	if (n_uids && n_gids) {
		newuidmap = find_tool("newuidmap");
		newgidmap = find_tool("newgidmap");
		no_map_tools = !newuidmap || !newgidmap;
	}
	if (newuidmap && newgidmap) {
		if (pipe2(go, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0) {
			kn_error_errno(err, "rootless: pipe");
			goto out;
		}
		helper = fork();
		if (helper < 0) {
			kn_error_errno(err, "rootless: fork");
			goto out;
		}
		if (helper == 0) {
			/* Waits for the parent's unshare, then maps it from outside. */
			pid_t parent = getppid();
			char c;
			int st;

			close(go[1]);
			close(out[0]);
			if (read(go[0], &c, 1) != 1)
				_exit(126);
			st = run_tool(map_argv(newuidmap, parent, uid, uids, n_uids), out[1]);
			if (st == 0)
				st = run_tool(map_argv(newgidmap, parent, gid, gids, n_gids), out[1]);
			_exit(st);
		}
		close(go[0]);
		go[0] = -1;
		close(out[1]);
		out[1] = -1;
	}

	if (unshare(CLONE_NEWUSER) < 0) {
		unshare_error(errno, err);
		goto out;
	}
	if (helper > 0) {
		struct kn_buf msg = KN_BUF_INIT;
		kn_error *ignored = NULL;
		int status = 0;

		if (write(go[1], "x", 1) != 1) {
			kn_error_errno(err, "rootless: start newuidmap");
			goto out;
		}
		if (kn_read_fd(out[0], 65536, &msg, &ignored) < 0)
			kn_error_free(ignored);
		while (waitpid(helper, &status, 0) < 0 && errno == EINTR)
			;
		helper = -1;
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			while (msg.len && (msg.buf[msg.len - 1] == '\n'))
				msg.buf[--msg.len] = '\0';
			kn_error_set(err, EPERM,
				     "rootless: newuidmap/newgidmap could not map the IDs of user '%s' "
				     "from /etc/subuid and /etc/subgid%s%s (in a container without "
				     "CAP_SYS_ADMIN, give them file capabilities instead of the setuid "
				     "bit: setcap cap_setuid=ep newuidmap; setcap cap_setgid=ep "
				     "newgidmap)",
				     host_user, msg.len ? ": " : "", msg.len ? msg.buf : "");
			kn_buf_release(&msg);
			goto out;
		}
		kn_buf_release(&msg);
	} else {
		char map[64];

		if (write_proc("/proc/self/setgroups", "deny", err) < 0)
			goto out;
		snprintf(map, sizeof(map), "0 %lu 1\n", (unsigned long)uid);
		if (write_proc("/proc/self/uid_map", map, err) < 0)
			goto out;
		snprintf(map, sizeof(map), "0 %lu 1\n", (unsigned long)gid);
		if (write_proc("/proc/self/gid_map", map, err) < 0)
			goto out;
	}
	if (syscall(SYS_setresgid, 0, 0, 0) < 0 || syscall(SYS_setresuid, 0, 0, 0) < 0) {
		kn_error_errno(err, "rootless: become root in the user namespace");
		goto out;
	}
	__atomic_store_n(&userns_state, -1, __ATOMIC_RELEASE);
	r = 0;
out:
	if (helper > 0) {
		(void)kill(helper, SIGKILL);
		while (waitpid(helper, NULL, 0) < 0 && errno == EINTR)
			;
	}
	for (int i = 0; i < 2; i++) {
		if (go[i] >= 0)
			close(go[i]);
		if (out[i] >= 0)
			close(out[i]);
	}
	return r;
}
