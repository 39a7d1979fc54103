/* Scope-bound ownership: a local marked with one of these is released when it goes out of
 * scope, so every early return is leak-free. Hand ownership on with steal_ptr/steal_fd. */
#ifndef PX_CLEANUP_H
#define PX_CLEANUP_H

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <errno.h>

static inline void px_freep(void *p)
{
	free(*(void **)p);
}

static inline void px_closep(int *fd)
{
	if (*fd >= 0) {
		int saved = errno;
		close(*fd);
		errno = saved;
	}
}

static inline void px_fclosep(FILE **f)
{
	if (*f)
		fclose(*f);
}

#define _cleanup_(f)     __attribute__((cleanup(f)))
#define _cleanup_free_   _cleanup_(px_freep)
#define _cleanup_close_  _cleanup_(px_closep)
#define _cleanup_fclose_ _cleanup_(px_fclosep)

/* Declares a cleanup function "name##p" for a type whose destructor accepts NULL. */
#define PX_DEFINE_CLEANUP(type, func)       \
	static inline void func##p(type *p) \
	{                                   \
		func(*p);                   \
	}

static inline void *px_steal_ptr(void *pp)
{
	void **p = pp;
	void *v = *p;
	*p = NULL;
	return v;
}
#define steal_ptr(pp) px_steal_ptr(pp)

static inline int steal_fd(int *fd)
{
	int v = *fd;
	*fd = -1;
	return v;
}

#endif
