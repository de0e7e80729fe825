#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>

#include "base/platform.h"
#include "base/xalloc.h"

void kn_arch_normalize(const char *arch, const char *variant, char **ret_arch, char **ret_variant)
{
	const char *a = arch, *v = variant ? variant : "";
	char armv[3] = { 'v', 0, 0 };

	if (!strcmp(a, "x86_64") || !strcmp(a, "x86-64") || !strcmp(a, "amd64")) {
		a = "amd64";
		if (!strcmp(v, "v1"))
			v = "";
	} else if (!strcmp(a, "aarch64") || !strcmp(a, "arm64")) {
		a = "arm64";
		if (!strcmp(v, "8") || !strcmp(v, "v8"))
			v = "";
	} else if (!strcmp(a, "armhf")) {
		a = "arm";
		v = "v7";
	} else if (!strcmp(a, "armel")) {
		a = "arm";
		v = "v6";
	} else if (!strncmp(a, "armv", 4) && a[4] >= '5' && a[4] <= '8') {
		armv[1] = a[4];
		a = "arm";
		if (!*v)
			v = armv;
	} else if (!strcmp(a, "arm")) {
		if (!*v || !strcmp(v, "7"))
			v = "v7";
		else if (!strcmp(v, "5"))
			v = "v5";
		else if (!strcmp(v, "6"))
			v = "v6";
		else if (!strcmp(v, "8"))
			v = "v8";
	} else if (!strcmp(a, "i386") || !strcmp(a, "i486") || !strcmp(a, "i586") ||
		   !strcmp(a, "i686")) {
		a = "386";
	}
	*ret_arch = xstrdup(a);
	*ret_variant = *v ? xstrdup(v) : NULL;
}

static char *host_arch, *host_variant;

static void host_init(void)
{
	struct utsname u;

	kn_arch_normalize(uname(&u) == 0 ? u.machine : "unknown", NULL, &host_arch, &host_variant);
}

void kn_platform_host(const char **ret_os, const char **ret_arch, const char **ret_variant)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, host_init);
	if (ret_os)
		*ret_os = "linux";
	if (ret_arch)
		*ret_arch = host_arch;
	if (ret_variant)
		*ret_variant = host_variant;
}
