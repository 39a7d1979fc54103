#include "bake/exec.h"

#include "bake/chroot-script.h"
#include "core/common.h"
#include "core/spawn.h"

static const char *limactl_name(void)
{
	const char *l = getenv("PEXI_LIMACTL");
	return l && *l ? l : "limactl";
}

static const char *instance_name(void)
{
	const char *i = getenv("PEXI_LIMA_INSTANCE");
	return i && *i ? i : "default";
}

static bool lima_available(const char **ret_why)
{
	if (!px_have_program(limactl_name())) {
		*ret_why = "the lima executor needs limactl (https://lima-vm.io) and a running "
		           "Linux instance (PEXI_LIMA_INSTANCE, default 'default')";
		return false;
	}
	return true;
}

static void add_step(struct px_lima_plan *p, const char *const *argv)
{
	size_t n = 0;
	while (argv[n])
		n++;
	char **v = xcalloc(n + 1, sizeof(*v));
	for (size_t i = 0; i < n; i++)
		v[i] = xstrdup(argv[i]);
	p->steps = xreallocarray(p->steps, p->n_steps + 1, sizeof(*p->steps));
	p->steps[p->n_steps++] = v;
}

int px_bake_lima_plan(const struct px_chroot_script *s, const char *limactl, const char *instance,
                      const char *tag, struct px_lima_plan *ret, struct px_err **err)
{
	struct px_lima_plan p = {0};
	_cleanup_free_ char *dir = xasprintf("/var/tmp/pexi-bake-%s", tag);
	_cleanup_free_ char *keys_dir = xasprintf("%s/keys", dir);
	_cleanup_free_ char *vm_image = xasprintf("%s/disk.raw", dir);
	_cleanup_free_ char *vm_image_at = xasprintf("%s:%s", instance, vm_image);

	/* The same script as the local executor, with the instance's paths. */
	struct px_chroot_script vs = *s;
	vs.image = vm_image;
	vs.work_base = "/var/tmp";
	char **repos = xcalloc(s->n_repositories + 1, sizeof(*repos));
	char **keys = xcalloc(s->n_keys + 1, sizeof(*keys));

	const char *mk[] = {limactl, "shell", instance, "--",     "mkdir", "-p",
	                    "-m",    "0700",  dir,      keys_dir, NULL};
	add_step(&p, mk);
	const char *cp_img[] = {limactl, "copy", s->image, vm_image_at, NULL};
	add_step(&p, cp_img);
	size_t n_file = 0;
	for (size_t i = 0; i < s->n_repositories; i++) {
		const char *path = px_chroot_file_url_path(s->repositories[i]);
		if (!path) {
			repos[i] = xstrdup(s->repositories[i]);
			continue;
		}
		_cleanup_free_ char *vm_repo = xasprintf("%s/repo.%zu", dir, ++n_file);
		_cleanup_free_ char *at = xasprintf("%s:%s", instance, vm_repo);
		repos[i] = xasprintf("file://%s", vm_repo);
		const char *cp[] = {limactl, "copy", "-r", path, at, NULL};
		add_step(&p, cp);
	}
	for (size_t i = 0; i < s->n_keys; i++) {
		const char *base = strrchr(s->keys[i], '/');
		base = base ? base + 1 : s->keys[i];
		keys[i] = xasprintf("%s/%s", keys_dir, base);
		_cleanup_free_ char *at = xasprintf("%s:%s", instance, keys[i]);
		const char *cp[] = {limactl, "copy", s->keys[i], at, NULL};
		add_step(&p, cp);
	}
	vs.repositories = (const char *const *)repos;
	vs.keys = (const char *const *)keys;
	int rc = px_chroot_script_build(&vs, &p.script, err);
	for (size_t i = 0; i < s->n_repositories; i++)
		free(repos[i]);
	for (size_t i = 0; i < s->n_keys; i++)
		free(keys[i]);
	free(repos);
	free(keys);
	if (rc < 0) {
		px_bake_lima_plan_free(&p);
		return -1;
	}

	p.script_step = p.n_steps;
	const char *sh[] = {limactl, "shell", "--workdir", "/",  instance,
	                    "--",    "sudo",  "sh",        "-s", NULL};
	add_step(&p, sh);
	p.host_tmp = xasprintf("%s.pexi-lima.tmp", s->image);
	const char *back[] = {limactl, "copy", vm_image_at, p.host_tmp, NULL};
	add_step(&p, back);
	const char *rm[] = {limactl, "shell", instance, "--", "sudo", "rm", "-rf", dir, NULL};
	add_step(&p, rm);
	*ret = p;
	return 0;
}

void px_bake_lima_plan_free(struct px_lima_plan *p)
{
	for (size_t i = 0; i < p->n_steps; i++) {
		for (char **a = p->steps[i]; *a; a++)
			free(*a);
		free(p->steps[i]);
	}
	free(p->steps);
	free(p->script);
	free(p->host_tmp);
	memset(p, 0, sizeof(*p));
}

static int lima_run(const struct px_chroot_script *s, const char *work_dir, struct px_err **err)
{
	_cleanup_free_ char *tag = xasprintf("%ld", (long)getpid());
	struct px_lima_plan p = {0};
	if (px_bake_lima_plan(s, limactl_name(), instance_name(), tag, &p, err) < 0)
		return -1;
	int rc = 0;
	size_t last = p.n_steps - 1;
	for (size_t i = 0; i < last && rc == 0; i++) {
		const char *const *argv = (const char *const *)p.steps[i];
		if (i == p.script_step)
			rc = px_bake_exec_script(argv, p.script, work_dir, err);
		else
			rc = px_run(argv, NULL, err);
	}
	if (rc == 0 && rename(p.host_tmp, s->image) < 0)
		rc = px_err_errno(err, errno, "cannot rename '%s' to '%s'", p.host_tmp, s->image);
	if (rc < 0)
		unlink(p.host_tmp);
	/* Removing the instance's copy is best effort: the bake's outcome is already known. */
	struct px_err *e = NULL;
	if (px_run((const char *const *)p.steps[last], NULL, &e) < 0)
		px_err_free(e);
	px_bake_lima_plan_free(&p);
	return rc;
}

const struct px_bake_exec px_bake_exec_lima = {
        .name = "lima",
        .available = lima_available,
        .run = lima_run,
};
