/* The patch stage of `pexi build`: writes into the root filesystem of a raw disk image,
 * through libext2fs at the partition's byte offset, without mounting and without root:
 *   1. /boot/grub/grub.cfg gets the kernel console and extra kernel arguments (grub.h);
 *   2. /etc/cloud/cloud.cfg.d/99_nocloud.cfg makes cloud-init look only for a NoCloud seed
 *      on a filesystem labelled "cidata" (then fall back to None);
 *   3. every `files:` entry of the manifest is written, in order (a later entry for the
 *      same path wins, and an entry may replace 99_nocloud.cfg).
 *
 * Templates: a `template:` entry names a text file (relative names resolve in
 * templates_dir). Its bytes are copied, except that a placeholder `{{ NAME }}` (NAME made
 * of letters, digits and '_'; blanks inside the braces optional) is replaced by the value
 * of NAME from template_vars ("NAME=VALUE" strings). A placeholder naming an unknown
 * variable is an error with the template's file name and line; any other text containing
 * "{{" is copied unchanged. There is no escaping, no logic, no recursion: a value is never
 * scanned for placeholders.
 *
 * Every inode written carries 'mtime' as its times, and so does the superblock's write
 * time, so the same inputs give the same image bytes. The image is modified in place: the
 * caller runs this on a temporary copy and renames it into place on success. */
#ifndef PX_PATCH_H
#define PX_PATCH_H

#include <stddef.h>
#include <stdint.h>

struct px_err;
struct px_strv;
struct px_file_entry;

/* Where cloud-init's datasource choice is written, and what it says. */
#define PX_NOCLOUD_CFG_PATH "/etc/cloud/cloud.cfg.d/99_nocloud.cfg"
extern const char px_nocloud_cfg[];

struct px_patch_opts {
	const char *image;                 /* the raw disk image */
	uint64_t fs_offset;                /* byte offset of the root filesystem in it */
	const char *console;               /* NULL: leave the console arguments alone */
	const struct px_strv *kernel_args; /* appended to every linux line unless present */
	const struct px_file_entry *files;
	size_t n_files;
	const char *templates_dir;           /* for relative template names; NULL: cwd */
	const struct px_strv *template_vars; /* "NAME=VALUE"; NULL: none */
	int64_t mtime;                       /* every timestamp written (source_date_epoch) */
};

/* Runs the stage. grub.cfg is rewritten only when console or kernel_args ask for it; a
 * missing grub.cfg is then the error "'/boot/grub/grub.cfg' not found in the root
 * filesystem of 'IMAGE'". */
int px_patch(const struct px_patch_opts *o, struct px_err **err);

/* Renders template text (see above); 'name' stands for the template in messages. */
int px_patch_render_template(const char *text, size_t len, const char *name,
                             const struct px_strv *vars, char **ret, size_t *ret_len,
                             struct px_err **err);

#endif
