#include <stdarg.h>

#include "core/common.h"

#include "manifest/manifest.h"
#include "vm/instance.h"
#include "vm/vm.h"

int px_vm_select(const struct px_manifest *m, const struct px_vm_ops **ret, struct px_err **err)
{
	switch (m->vm.backend) {
	case PX_BACKEND_QEMU:
		*ret = &px_vm_qemu_ops;
		return 0;
	case PX_BACKEND_AVF: {
#if !defined(__APPLE__)
		const char *runner = getenv("PEXI_AVF_RUNNER");
		if (!runner || !*runner)
			return px_err_set(err, PX_EXIT_MANIFEST,
			                  "vm.backend 'avf' needs macOS (to test it elsewhere, set "
			                  "PEXI_AVF_RUNNER to a stand-in runner)");
#endif
		*ret = &px_vm_avf_ops;
		return 0;
	}
	case PX_BACKEND_AUTO:
	default:
#if defined(__APPLE__)
		*ret = &px_vm_avf_ops;
#else
		*ret = &px_vm_qemu_ops;
#endif
		return 0;
	}
}

int px_vm_prepare(struct px_vm *vm, const struct px_vm_ops *ops, const struct px_manifest *m,
                  const struct px_instance *inst, const char *disk, const char *seed,
                  struct px_err **err)
{
	*vm = (struct px_vm){.ops = ops, .m = m, .inst = inst};
	vm->disk = xstrdup(disk);
	vm->seed = xstrdup(seed);
	if (m->vm.shared_dir) {
		const char *d = m->vm.shared_dir;
		vm->shared_dir = d[0] == '/' ? xstrdup(d) : xasprintf("%s/%s", m->dir, d);
		struct stat st;
		if (stat(vm->shared_dir, &st) < 0 || !S_ISDIR(st.st_mode))
			return px_err_set(err, PX_EXIT_FAILURE,
			                  "vm.shared_dir '%s' is not a directory (create it first)",
			                  vm->shared_dir);
	}
	if (ops->prepare(vm, err) < 0)
		return px_err_wrap(err, "backend '%s'", ops->name);
	return 0;
}

void px_vm_free(struct px_vm *vm)
{
	free(vm->disk);
	free(vm->seed);
	free(vm->shared_dir);
	free(vm->accel);
	free(vm->warning);
	px_argv_free(vm->argv);
	*vm = (struct px_vm){0};
}

void px_argv_add(struct px_argv *a, const char *s)
{
	a->v = xreallocarray(a->v, a->n + 2, sizeof(*a->v));
	a->v[a->n++] = xstrdup(s);
	a->v[a->n] = NULL;
}

void px_argv_addf(struct px_argv *a, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *s = xvasprintf(fmt, ap);
	va_end(ap);
	a->v = xreallocarray(a->v, a->n + 2, sizeof(*a->v));
	a->v[a->n++] = s;
	a->v[a->n] = NULL;
}

char **px_argv_steal(struct px_argv *a)
{
	char **v = a->v ? a->v : xcalloc(1, sizeof(*v));
	*a = (struct px_argv){0};
	return v;
}

void px_argv_free(char **v)
{
	if (!v)
		return;
	for (char **p = v; *p; p++)
		free(*p);
	free(v);
}
