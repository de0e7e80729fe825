/* kiln builder: the RUN sandbox's seccomp filter (docker's default profile through libseccomp).
 * Internal to builder/ and its tests. */
#ifndef KILN_BUILDER_SECCOMP_INTERNAL_H
#define KILN_BUILDER_SECCOMP_INTERNAL_H

#include <linux/filter.h>
#include <stddef.h>

#include "base/base.h"

/** The ABIs a filter covers: a kernel architecture and the compat ABIs it runs. */
enum sbx_seccomp_abis {
	/** x86_64 with its i386 (int 0x80) and x32 ABIs. */
	SBX_SECCOMP_X86_64 = 0,
	/** aarch64 with its 32-bit arm (EABI) ABI. */
	SBX_SECCOMP_AARCH64,
	/** Any other kernel: the native ABI of the build only (as libseccomp knows it). */
	SBX_SECCOMP_NATIVE,
};

/** The ABIs of the running kernel, from uname(2)'s machine (not from how kiln was built). */
enum sbx_seccomp_abis sbx_seccomp_host_abis(void);

/**
 * Builds docker's default seccomp profile as it applies to an unprivileged container (docker's
 * default capability set, kernel >= 4.8), for every ABI of abis, as a classic BPF program ready
 * for prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER):
 *  - an allow-list: every syscall docker's profile allows, plus the per-architecture ones
 *    (arch_prctl and modify_ldt on x86; arm's cacheflush, set_tls, breakpoint...);
 *  - argument filters: clone only without namespace flags (CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|
 *    NEWUSER|NEWPID|NEWNET), personality only for the five personas docker allows, socket for
 *    every family but AF_VSOCK;
 *  - clone3 fails with ENOSYS (its flags are in memory a filter cannot read, so libc falls back
 *    to clone); everything else fails with EPERM, an ABI outside abis with ENOSYS.
 * Unlike docker's older profiles, io_uring is refused (docker since 25.0).
 * On success *ret_prog (owned, free()) holds *ret_len instructions.
 */
int sbx_seccomp_build(enum sbx_seccomp_abis abis, struct sock_filter **ret_prog, size_t *ret_len,
		      kn_error **err);

/**
 * The program for the host's ABIs (sbx_seccomp_host_abis()), built once per process and shared:
 * *ret_prog stays valid until exit, never free it. Thread-safe.
 */
int sbx_seccomp_default(const struct sock_filter **ret_prog, size_t *ret_len, kn_error **err);

#endif
