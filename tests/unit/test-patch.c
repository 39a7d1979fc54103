/* The patch stage on the Alpine-shaped fixture, checked with debugfs, e2fsck, sha256sum and
 * cloud-init's own config loader; plus its timing next to the seeds' debugfs calls. */
#include "core/common.h"

#include "image/patch.h"
#include "manifest/manifest.h"
#include "tap.h"

#include "ext-fixture.h"

#define T INT64_C(1700000000)

/* cloud-init's loader, as it reads /etc/cloud/cloud.cfg.d: the keys must come out as the
 * NoCloud datasource expects them. */
static const char cloud_check[] = "import sys\n"
                                  "from cloudinit import util\n"
                                  "cfg = util.read_conf(sys.argv[1])\n"
                                  "assert cfg['datasource_list'] == ['NoCloud', 'None'], cfg\n"
                                  "ds = util.get_cfg_by_path(cfg, ('datasource', 'NoCloud'), {})\n"
                                  "assert ds.get('fs_label') == 'cidata', ds\n"
                                  "assert set(cfg) == {'datasource_list', 'datasource'}, cfg\n";

/* The interpreter cloud-init runs under (its #! line), which has the cloudinit module even
 * when another python3 comes first in PATH. */
static char *cloud_init_python(void)
{
	const char *path = getenv("PATH");
	char *copy = xstrdup(path ? path : "/usr/bin:/bin"), *save = NULL, *result = NULL;
	for (char *d = strtok_r(copy, ":", &save); d && !result; d = strtok_r(NULL, ":", &save)) {
		char *f = xasprintf("%s/cloud-init", d), *text = NULL;
		size_t len;
		if (px_file_read(f, 1 << 20, &text, &len, NULL) == 0 && strncmp(text, "#!", 2) == 0)
			result = xstrndup(text + 2, strcspn(text + 2, " \n"));
		free(text);
		free(f);
	}
	free(copy);
	return result;
}

struct setup {
	char *tdir;
	char *host_file;
	struct px_file_entry files[4];
	char *vars_v[2];
	struct px_strv vars;
};

static void setup_init(struct setup *s)
{
	struct px_err *err = NULL;
	s->tdir = xasprintf("%s/templates", fx_dir);
	s->host_file = xasprintf("%s/hello.sh", fx_dir);
	char *tfile = xasprintf("%s/agent.conf.in", s->tdir);
	static const char tmpl[] = "# {{ not a placeholder\nname={{ name }}\nport={{port}}\n";
	if (px_mkdir_p(s->tdir, 0755, &err) < 0 ||
	    px_atomic_write_file(tfile, tmpl, strlen(tmpl), 0644, &err) < 0 ||
	    px_atomic_write_file(s->host_file, "#!/bin/sh\necho hello\n", 21, 0755, &err) < 0) {
		printf("# %s\n", err->msg);
		exit(1);
	}
	free(tfile);
	memset(s->files, 0, sizeof(s->files));
	s->files[0] = (struct px_file_entry){.path = (char *)"/etc/motd",
	                                     .content = (char *)"Welcome to pexi\n",
	                                     .mode = 0644,
	                                     .line = 10};
	s->files[1] = (struct px_file_entry){.path = (char *)"/usr/local/bin/hello",
	                                     .source = s->host_file,
	                                     .mode = 0755,
	                                     .line = 11};
	s->files[2] = (struct px_file_entry){.path = (char *)"/etc/pexi/agent.conf",
	                                     .template = (char *)"agent.conf.in",
	                                     .mode = 0600,
	                                     .uid = 1000,
	                                     .gid = 1000,
	                                     .line = 12};
	s->files[3] = (struct px_file_entry){.path = (char *)"/etc/os-release",
	                                     .content = (char *)"ID=pexi\n",
	                                     .mode = 0644,
	                                     .line = 13};
	s->vars_v[0] = (char *)"name=demo";
	s->vars_v[1] = (char *)"port=5000";
	s->vars = (struct px_strv){s->vars_v, 2};
}

static void setup_free(struct setup *s)
{
	free(s->tdir);
	free(s->host_file);
}

static struct px_patch_opts opts_for(const char *img, const struct setup *s)
{
	return (struct px_patch_opts){.image = img,
	                              .fs_offset = FX_OFFSET,
	                              .console = "hvc0",
	                              .files = s->files,
	                              .n_files = 4,
	                              .templates_dir = s->tdir,
	                              .template_vars = &s->vars,
	                              .mtime = T};
}

static int run_patch(const struct px_patch_opts *o, struct px_err **err)
{
	return px_patch(o, err);
}

/* The fixture's grub.cfg with every console=ttyS0 turned into console=hvc0, by plain text
 * replacement: what the patched file must be. */
static char *expected_grub(const char *orig, int *count)
{
	struct px_buf b = PX_BUF_INIT;
	const char *p = orig, *q;
	*count = 0;
	while ((q = strstr(p, "console=ttyS0"))) {
		px_buf_append(&b, p, (size_t)(q - p), NULL);
		px_buf_puts(&b, "console=hvc0");
		p = q + strlen("console=ttyS0");
		(*count)++;
	}
	px_buf_puts(&b, p);
	return px_buf_steal(&b, NULL);
}

static void check_attrs(const char *img, const char *path, const char *type, unsigned mode,
                        unsigned uid, unsigned gid)
{
	struct fx_stat st;
	if (!ok(fx_stat(img, path, &st) && px_streq(st.type, type) && st.mode == mode &&
	                st.uid == uid && st.gid == gid && st.mtime == (unsigned long)T &&
	                st.ctime == (unsigned long)T && st.atime == (unsigned long)T,
	        "debugfs stat %s: %s %04o %u:%u, times = source_date_epoch", path, type, mode, uid,
	        gid))
		printf("#   got %s %04o %u:%u mtime %lx ctime %lx\n", st.type, st.mode, st.uid,
		       st.gid, st.mtime, st.ctime);
}

static void test_full(const char *raw, struct setup *s)
{
	char *img = fx_copy(raw, "full.raw");
	struct px_patch_opts o = opts_for(img, s);
	struct px_err *err = NULL;
	int count = 0;

	char *orig = fx_cat(raw, "/boot/grub/grub.cfg");
	char *want = orig ? expected_grub(orig, &count) : NULL;
	is_int(count, 2, "the fixture's grub.cfg has two console=ttyS0");

	int r = run_patch(&o, &err);
	if (!ok(r == 0, "px_patch: console hvc0, NoCloud, 4 files entries"))
		printf("#   %s\n", err->msg);
	px_err_clear(&err);
	ok(fx_fsck_clean(img), "e2fsck -fn clean after patching");

	char *grub = fx_cat(img, "/boot/grub/grub.cfg");
	is_str(grub, want, "grub.cfg is the original with console=hvc0 on both linux lines");
	check_attrs(img, "/boot/grub/grub.cfg", "regular", 0644, 0, 0);

	char *nc = fx_cat(img, PX_NOCLOUD_CFG_PATH);
	is_str(nc,
	       "# Written by pexi: cloud-init takes its seed from the ISO labelled cidata.\n"
	       "datasource_list: [ NoCloud, None ]\n"
	       "datasource:\n"
	       "  NoCloud:\n"
	       "    fs_label: cidata\n",
	       "99_nocloud.cfg exact content");
	check_attrs(img, PX_NOCLOUD_CFG_PATH, "regular", 0644, 0, 0);
	char *py = cloud_init_python();
	if (nc && py) {
		char *host = xasprintf("%s/99_nocloud.cfg", fx_dir);
		px_atomic_write_file(host, nc, strlen(nc), 0644, NULL);
		const char *argv[] = {py, "-c", cloud_check, host, NULL};
		ok(px_run(argv, NULL, &err) == 0,
		   "cloud-init's config loader reads datasource_list and NoCloud fs_label");
		if (err)
			printf("#   %s\n", err->msg);
		px_err_clear(&err);
		if (px_have_program("cloud-init")) {
			/* The schema tool wants user-data's header; the rest is the file itself. */
			char *ud = xasprintf("%s/ud.cfg", fx_dir),
			     *text = xasprintf("#cloud-config\n%s", nc);
			px_atomic_write_file(ud, text, strlen(text), 0644, NULL);
			const char *sargv[] = {"cloud-init", "schema", "--config-file", ud, NULL};
			ok(px_run(sargv, NULL, &err) == 0, "cloud-init schema accepts it");
			px_err_clear(&err);
			free(ud);
			free(text);
		}
		free(host);
	} else {
		printf("# cloud-init is not installed: its loader check did not run\n");
	}
	free(py);

	char *motd = fx_cat(img, "/etc/motd");
	is_str(motd, "Welcome to pexi\n", "content entry");
	check_attrs(img, "/etc/motd", "regular", 0644, 0, 0);
	char *hello = fx_cat(img, "/usr/local/bin/hello");
	is_str(hello, "#!/bin/sh\necho hello\n", "source entry copied from the host file");
	check_attrs(img, "/usr/local/bin/hello", "regular", 0755, 0, 0);
	check_attrs(img, "/usr/local", "directory", 0755, 0, 0);
	char *agent = fx_cat(img, "/etc/pexi/agent.conf");
	is_str(agent, "# {{ not a placeholder\nname=demo\nport=5000\n",
	       "template entry rendered from templates/");
	check_attrs(img, "/etc/pexi/agent.conf", "regular", 0600, 1000, 1000);
	char *osr = fx_cat(img, "/etc/os-release");
	is_str(osr, "ID=pexi\n", "an existing file replaced");
	char *logging = fx_cat(img, "/etc/cloud/cloud.cfg.d/05_logging.cfg");
	like(logging, "placeholder shipped by the base image", "other files are untouched");

	free(logging);
	free(osr);
	free(agent);
	free(hello);
	free(motd);
	free(nc);
	free(grub);
	free(want);
	free(orig);
	free(img);
}

static void test_deterministic(const char *raw, struct setup *s)
{
	char *a = fx_copy(raw, "det-a.raw"), *b = fx_copy(raw, "det-b.raw");
	struct px_patch_opts oa = opts_for(a, s), ob = opts_for(b, s);
	ok(run_patch(&oa, NULL) == 0, "patch copy A");
	sleep(1);
	ok(run_patch(&ob, NULL) == 0, "patch copy B a second later");
	char *ha = fx_sha256(a), *hb = fx_sha256(b);
	ok(ha && hb && strcmp(ha, hb) == 0, "sha256sum of the two patched images is equal");
	char *when = fx_last_write_time(a);
	is_str(when, "Tue Nov 14 22:13:20 2023", "superblock write time is source_date_epoch");
	free(when);
	free(ha);
	free(hb);
	free(a);
	free(b);
}

static void refuse(const char *raw, const char *name, const char *prep, struct px_file_entry *f,
                   const char *console, const char *fragment)
{
	char *img = fx_copy(raw, "refuse.raw");
	struct px_patch_opts o = {.image = img,
	                          .fs_offset = FX_OFFSET,
	                          .console = console,
	                          .files = f,
	                          .n_files = f ? 1 : 0,
	                          .mtime = T};
	struct px_err *err = NULL;
	if (prep)
		fx_debugfs_w(img, prep);
	ok(run_patch(&o, &err) < 0, "%s is refused", name);
	like(err ? err->msg : NULL, fragment, "  message");
	px_err_free(err);
	free(img);
}

static void test_refusals(const char *raw)
{
	struct px_file_entry f = {.content = (char *)"x\n", .mode = 0644, .line = 7};
	char *want;

	f.path = (char *)"../etc/x";
	refuse(raw, "a relative ../ path", NULL, &f, "hvc0",
	       "files entry '../etc/x' (manifest line 7): path '../etc/x' is not absolute");
	f.path = (char *)"/etc/../../x";
	refuse(raw, "a /.. path", NULL, &f, "hvc0", "'..' component");
	f.path = (char *)"etc/x";
	refuse(raw, "a relative path", NULL, &f, "hvc0", "is not absolute");
	f.path = (char *)"/linkdir/x";
	refuse(raw, "a path through a symlink", "symlink /linkdir /etc\n", &f, "hvc0",
	       "is a symbolic link: refusing to follow it");
	f.path = (char *)"/etc/cloud";
	refuse(raw, "a path that is a directory", NULL, &f, "hvc0", "is a directory");
	f.path = (char *)"/etc/x";
	f.mode = 010644;
	refuse(raw, "a mode beyond 07777", NULL, &f, "hvc0", "mode 10644 has bits beyond 07777");
	f.mode = 0644;
	f.content = NULL;
	f.template = (char *)"/nonexistent/t.in";
	refuse(raw, "a missing template", NULL, &f, "hvc0", "'/nonexistent/t.in'");

	char *missing = xasprintf("%s/refuse.raw", fx_dir);
	want = xasprintf("'/boot/grub/grub.cfg' not found in the root filesystem of '%s'", missing);
	refuse(raw, "a missing grub.cfg", "rm /boot/grub/grub.cfg\n", NULL, "hvc0", want);
	free(want);
	free(missing);
	refuse(raw, "a console with a blank", NULL, NULL, "hvc0 quiet", "must be one word");

	/* Without console or kernel args grub.cfg is not needed at all. */
	char *img = fx_copy(raw, "nogrub.raw");
	fx_debugfs_w(img, "rm /boot/grub/grub.cfg\n");
	struct px_patch_opts o = {.image = img, .fs_offset = FX_OFFSET, .mtime = T};
	ok(run_patch(&o, NULL) == 0, "no console asked: a missing grub.cfg is fine");
	ok(fx_fsck_clean(img), "  and e2fsck is clean");
	free(img);
}

static void test_template_render(void)
{
	char *v[] = {(char *)"a=1", (char *)"ab=two"};
	struct px_strv vars = {v, 2};
	struct px_err *err = NULL;
	char *out = NULL;
	size_t len = 0;
	const char *in = "{{a}}{{ab}} {{  a  }}{{a }x}} {{}} {{ab";
	ok(px_patch_render_template(in, strlen(in), "t", &vars, &out, &len, &err) == 0,
	   "render a template");
	is_str(out, "1two 1{{a }x}} {{}} {{ab", "placeholders replaced, other braces kept");
	free(out);
	in = "line1\nline2 {{ missing }}\n";
	ok(px_patch_render_template(in, strlen(in), "t.in", &vars, &out, &len, &err) < 0,
	   "an unknown variable is an error");
	is_str(err ? err->msg : NULL, "template 't.in':2: unknown variable 'missing'",
	       "  naming the template, line and variable");
	px_err_free(err);
}

static double median(double *v, int n)
{
	for (int i = 0; i < n; i++)
		for (int j = i + 1; j < n; j++)
			if (v[j] < v[i]) {
				double t = v[i];
				v[i] = v[j];
				v[j] = t;
			}
	return v[n / 2];
}

/* The seeds' way: read grub.cfg with debugfs, then one debugfs -w for grub.cfg (rm +
 * write) and one for 99_nocloud.cfg. */
static double seeds_way(const char *img)
{
	char *grub_host = xasprintf("%s/grub.cfg", fx_dir), *nc_host = xasprintf("%s/nc", fx_dir);
	char *cmds = xasprintf("%s/seedcmds", fx_dir), *spec = fx_spec(img);
	char *nc_cmd = xasprintf("write %s %s", nc_host, PX_NOCLOUD_CFG_PATH);
	char *script =
	        xasprintf("rm /boot/grub/grub.cfg\nwrite %s /boot/grub/grub.cfg\n", grub_host);
	px_atomic_write_file(cmds, script, strlen(script), 0644, NULL);
	px_atomic_write_file(nc_host, px_nocloud_cfg, strlen(px_nocloud_cfg), 0644, NULL);

	double t0 = fx_now();
	int count;
	char *orig = fx_cat(img, "/boot/grub/grub.cfg");
	char *grub = expected_grub(orig, &count);
	px_atomic_write_file(grub_host, grub, strlen(grub), 0644, NULL);
	const char *a1[] = {"debugfs", "-w", "-f", cmds, spec, NULL};
	const char *a2[] = {"debugfs", "-w", "-R", nc_cmd, spec, NULL};
	char *o1 = NULL, *o2 = NULL;
	px_run(a1, &o1, NULL);
	px_run(a2, &o2, NULL);
	double t = fx_now() - t0;
	free(o1);
	free(o2);
	free(orig);
	free(grub);
	free(grub_host);
	free(nc_host);
	free(cmds);
	free(spec);
	free(nc_cmd);
	free(script);
	return t;
}

static void test_timing(const char *raw, struct setup *s)
{
	enum { RUNS = 5 };
	double ours[RUNS], seeds[RUNS];
	for (int i = 0; i < RUNS; i++) {
		char *img = fx_copy(raw, "time.raw");
		struct px_patch_opts o = opts_for(img, s);
		o.n_files = 3;
		double t0 = fx_now();
		int r = run_patch(&o, NULL);
		ours[i] = fx_now() - t0;
		if (r < 0)
			ours[i] = -1;
		free(img);
		img = fx_copy(raw, "time.raw");
		seeds[i] = seeds_way(img);
		if (i == 0) {
			char *nc = fx_cat(img, PX_NOCLOUD_CFG_PATH);
			is_str(nc, px_nocloud_cfg,
			       "the seeds' way produced the same 99_nocloud.cfg");
			free(nc);
		}
		free(img);
	}
	double mo = median(ours, RUNS), ms = median(seeds, RUNS);
	ok(mo > 0, "px_patch ran in every timing round");
	printf("# px_patch (grub + nocloud + 3 files), median of %d: %.2f ms\n", RUNS, mo * 1e3);
	printf("# seeds' debugfs calls (cat + 2x write), median of %d: %.2f ms\n", RUNS, ms * 1e3);
	printf("# ratio px_patch / seeds: %.3f\n", mo / ms);
}

int main(void)
{
	char *raw = fx_build();
	struct setup s;
	setup_init(&s);
	test_template_render();
	test_full(raw, &s);
	test_deterministic(raw, &s);
	test_refusals(raw);
	test_timing(raw, &s);
	setup_free(&s);
	free(raw);
	return done_testing();
}
