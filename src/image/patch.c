/* The patch stage: grub.cfg console, the NoCloud datasource choice, and the manifest's
 * files, all through extfs.h. */
#include <ctype.h>

#include "core/common.h"

#include "core/buf.h"
#include "core/file.h"
#include "image/extfs.h"
#include "image/grub.h"
#include "image/patch.h"
#include "manifest/manifest.h"

#define GRUB_CFG "/boot/grub/grub.cfg"

/* grub.cfg files are a few KiB; anything this large is not one. */
#define GRUB_CFG_MAX (1u << 20)
/* Templates are small text files rendered in memory. */
#define TEMPLATE_MAX (16u << 20)

/* cloud-init reads every file in cloud.cfg.d; the highest name wins, hence 99_. Listing
 * None after NoCloud lets cloud-init finish booting even without a seed, instead of
 * searching every other datasource. */
const char px_nocloud_cfg[] = "# Written by pexi: cloud-init takes its seed from the ISO "
                              "labelled cidata.\n"
                              "datasource_list: [ NoCloud, None ]\n"
                              "datasource:\n"
                              "  NoCloud:\n"
                              "    fs_label: cidata\n";

PX_DEFINE_CLEANUP(struct px_extfs *, px_extfs_abort)

static const char *lookup_var(const struct px_strv *vars, const char *name, size_t n)
{
	for (size_t i = 0; vars && i < vars->n; i++) {
		const char *v = vars->v[i];
		if (strncmp(v, name, n) == 0 && v[n] == '=')
			return v + n + 1;
	}
	return NULL;
}

static bool is_name_char(char c)
{
	return isalnum((unsigned char)c) || c == '_';
}

int px_patch_render_template(const char *text, size_t len, const char *name,
                             const struct px_strv *vars, char **ret, size_t *ret_len,
                             struct px_err **err)
{
	_cleanup_buf_ struct px_buf out = PX_BUF_INIT;
	const char *p = text, *end = text + len;
	int line = 1;

	while (p < end) {
		const char *open = memmem(p, (size_t)(end - p), "{{", 2);
		if (!open) {
			px_buf_append(&out, p, (size_t)(end - p), NULL);
			break;
		}
		for (const char *c = p; c < open; c++)
			line += *c == '\n';
		px_buf_append(&out, p, (size_t)(open - p), NULL);

		const char *q = open + 2, *name_start, *value;
		size_t name_len;
		while (q < end && *q == ' ')
			q++;
		name_start = q;
		while (q < end && is_name_char(*q))
			q++;
		name_len = (size_t)(q - name_start);
		while (q < end && *q == ' ')
			q++;
		if (name_len == 0 || end - q < 2 || q[0] != '}' || q[1] != '}') {
			/* Not a placeholder: copy the braces and go on after them. */
			px_buf_append(&out, open, 2, NULL);
			p = open + 2;
			continue;
		}
		value = lookup_var(vars, name_start, name_len);
		if (!value)
			return px_err_set(err, PX_EXIT_INPUT,
			                  "template '%s':%d: unknown variable '%.*s'", name, line,
			                  (int)name_len, name_start);
		px_buf_puts(&out, value);
		p = q + 2;
	}
	*ret = px_buf_steal(&out, ret_len);
	if (!*ret)
		*ret = xstrdup("");
	return 0;
}

static int patch_grub(struct px_extfs *fs, const struct px_patch_opts *o, struct px_err **err)
{
	_cleanup_free_ char *cfg = NULL, *out = NULL;
	size_t len = 0, out_len = 0;
	struct px_extfs_attrs a;

	if (px_extfs_stat(fs, GRUB_CFG, &a, err) < 0 ||
	    px_extfs_read_file(fs, GRUB_CFG, GRUB_CFG_MAX, &cfg, &len, err) < 0)
		return -1;
	if (px_grub_set_console(cfg, len, o->console, o->kernel_args, &out, &out_len, err) < 0)
		return px_err_wrap(err, "'%s' in the root filesystem of '%s'", GRUB_CFG, o->image);
	if (out_len == len && memcmp(out, cfg, len) == 0)
		return 0;
	a.mode &= 07777;
	a.mtime = o->mtime;
	return px_extfs_write_file(fs, GRUB_CFG, out, out_len, &a, err);
}

static char *resolve_template(const struct px_patch_opts *o, const char *t)
{
	if (t[0] == '/' || !o->templates_dir)
		return xstrdup(t);
	return xasprintf("%s/%s", o->templates_dir, t);
}

static int patch_file(struct px_extfs *fs, const struct px_patch_opts *o,
                      const struct px_file_entry *f, struct px_err **err)
{
	struct px_extfs_attrs a = {f->mode, f->uid, f->gid, o->mtime};
	/* The manifest checks guarantee exactly one kind of content; the mode is checked here
	 * too because callers may build entries without a manifest. */
	if (f->mode & ~07777u)
		return px_err_set(err, PX_EXIT_MANIFEST, "mode %o has bits beyond 07777", f->mode);
	if (f->symlink)
		return px_extfs_symlink(fs, f->path, f->symlink, &a, err);
	if (f->content)
		return px_extfs_write_file(fs, f->path, f->content, strlen(f->content), &a, err);
	if (f->source)
		return px_extfs_write_host_file(fs, f->path, f->source, &a, err);

	_cleanup_free_ char *tpath = resolve_template(o, f->template);
	_cleanup_free_ char *text = NULL, *out = NULL;
	size_t len = 0, out_len = 0;
	if (px_file_read(tpath, TEMPLATE_MAX, &text, &len, err) < 0 ||
	    px_patch_render_template(text, len, tpath, o->template_vars, &out, &out_len, err) < 0)
		return -1;
	return px_extfs_write_file(fs, f->path, out, out_len, &a, err);
}

int px_patch(const struct px_patch_opts *o, struct px_err **err)
{
	_cleanup_(px_extfs_abortp) struct px_extfs *fs = NULL;
	const struct px_extfs_attrs nocloud = {0644, 0, 0, o->mtime};
	const struct px_extfs_attrs dir = {0755, 0, 0, o->mtime};

	if (px_extfs_open(o->image, o->fs_offset, true, &fs, err) < 0)
		return -1;
	px_extfs_set_time(fs, o->mtime);

	if ((o->console || (o->kernel_args && o->kernel_args->n)) && patch_grub(fs, o, err) < 0)
		return px_err_wrap(err, "cannot set the kernel console");

	if (px_extfs_mkdir_p(fs, "/etc/cloud/cloud.cfg.d", &dir, err) < 0 ||
	    px_extfs_write_file(fs, PX_NOCLOUD_CFG_PATH, px_nocloud_cfg, strlen(px_nocloud_cfg),
	                        &nocloud, err) < 0)
		return px_err_wrap(err, "cannot write the cloud-init datasource configuration");

	for (size_t i = 0; i < o->n_files; i++) {
		const struct px_file_entry *f = &o->files[i];
		if (patch_file(fs, o, f, err) < 0)
			return px_err_wrap(err, "files entry '%s' (manifest line %d)",
			                   f->path ? f->path : "", f->line);
	}
	return px_extfs_close(steal_ptr(&fs), err);
}
