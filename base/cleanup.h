/* kiln base: scope-bound cleanup for owned resources (crun/systemd style). */
#ifndef KILN_BASE_CLEANUP_H
#define KILN_BASE_CLEANUP_H

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))

static inline void kn_freep(void *p)
{
	free(*(void **)p);
}
static inline void kn_closep(int *fd)
{
	if (*fd >= 0) {
		int saved = errno;
		close(*fd);
		errno = saved;
	}
}
static inline void kn_fclosep(FILE **f)
{
	if (*f)
		fclose(*f);
}
static inline void kn_closedirp(DIR **d)
{
	if (*d)
		closedir(*d);
}

#define _cleanup_free_ _cleanup_(kn_freep)
#define _cleanup_close_ _cleanup_(kn_closep)
#define _cleanup_fclose_ _cleanup_(kn_fclosep)
#define _cleanup_closedir_ _cleanup_(kn_closedirp)

/* DEFINE_FREEP(struct foo, foo_free) defines foo_freep for _cleanup_(foo_freep). */
#define DEFINE_FREEP(type, fn)                                                                     \
	static inline void fn##p(type **p)                                                        \
	{                                                                                          \
		if (*p)                                                                            \
			fn(*p);                                                                    \
	}

/* Transfers ownership: returns *pp and NULLs it. */
#define steal_ptr(pp)                                                                              \
	({                                                                                         \
		__typeof__(*(pp)) _p = *(pp);                                                      \
		*(pp) = NULL;                                                                      \
		_p;                                                                                \
	})
static inline int steal_fd(int *fd)
{
	int r = *fd;
	*fd = -1;
	return r;
}

#endif
