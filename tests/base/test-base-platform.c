/* Unit tests for base/platform.c: uname machine names normalized as containerd does, and the host
 * platform taken from the running kernel (under QEMU user emulation, the emulated machine's). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>

#include <cmocka.h>

#include "base/platform.h"

static void expect(const char *arch, const char *variant, const char *want_arch,
		   const char *want_variant)
{
	char *a = NULL, *v = NULL;

	kn_arch_normalize(arch, variant, &a, &v);
	assert_string_equal(a, want_arch);
	if (want_variant)
		assert_string_equal(v ? v : "(none)", want_variant);
	else
		assert_null(v);
	free(a);
	free(v);
}

/* What uname -m prints on each kind of machine, as an OCI platform. */
static void test_uname_machines(void **state)
{
	(void)state;
	expect("x86_64", NULL, "amd64", NULL);
	expect("aarch64", NULL, "arm64", NULL);
	expect("arm64", NULL, "arm64", NULL);
	expect("armv7l", NULL, "arm", "v7");
	expect("armv6l", NULL, "arm", "v6");
	expect("armv8l", NULL, "arm", "v8");
	expect("i686", NULL, "386", NULL);
	expect("i386", NULL, "386", NULL);
	expect("ppc64le", NULL, "ppc64le", NULL);
	expect("s390x", NULL, "s390x", NULL);
	expect("riscv64", NULL, "riscv64", NULL);
}

/* Variants as users write them in --platform. */
static void test_variants(void **state)
{
	(void)state;
	expect("arm64", "v8", "arm64", NULL);
	expect("arm64", "8", "arm64", NULL);
	expect("aarch64", "v8", "arm64", NULL);
	expect("amd64", "v1", "amd64", NULL);
	expect("amd64", "v3", "amd64", "v3");
	expect("arm", NULL, "arm", "v7");
	expect("arm", "6", "arm", "v6");
	expect("armhf", NULL, "arm", "v7");
	expect("armel", NULL, "arm", "v6");
}

/* The host platform is the running kernel's machine: an arm64 host builds linux/arm64. */
static void test_host_is_the_kernels(void **state)
{
	const char *os = NULL, *arch = NULL, *variant = NULL;
	struct utsname u;
	char *a = NULL, *v = NULL;

	(void)state;
	assert_int_equal(uname(&u), 0);
	kn_platform_host(&os, &arch, &variant);
	kn_arch_normalize(u.machine, NULL, &a, &v);
	assert_string_equal(os, "linux");
	assert_string_equal(arch, a);
#if defined(__aarch64__)
	assert_string_equal(arch, "arm64");
	assert_null(variant);
#elif defined(__x86_64__)
	assert_string_equal(arch, "amd64");
	assert_null(variant);
#endif
	free(a);
	free(v);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_uname_machines),
	    cmocka_unit_test(test_variants),
	    cmocka_unit_test(test_host_is_the_kernels),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
