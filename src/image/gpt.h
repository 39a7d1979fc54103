/* The GPT of a raw disk image, through libfdisk: finding the root partition and growing the
 * disk. Everything works on a regular file, so no root and no loop device are needed.
 *
 * libfdisk never prompts and never prints here: its questions are answered "no" and its
 * messages go to the debug log, and the last one is kept for the error message when an
 * operation fails. Nothing random enters the table: GUIDs are kept, never regenerated. */
#ifndef PX_GPT_H
#define PX_GPT_H

#include <stddef.h>
#include <stdint.h>

struct px_err;

/* The type GUID of a Linux filesystem partition, the one the automatic choice looks for. */
#define PX_GPT_TYPE_LINUX_FS "0FC63DAF-8483-4772-8E79-3D69D8477DE4"

/* Where a grown partition ends: the last sector before a 1 MiB boundary, the alignment that
 * libfdisk and sgdisk use by default. A fixed value (rather than one probed from the host)
 * keeps the output the same on every machine. */
#define PX_GPT_ALIGN (1024u * 1024u)

struct px_partition {
	size_t index;       /* 1-based partition number */
	uint64_t start;     /* byte offset in the image */
	uint64_t size;      /* bytes */
	char type_guid[37]; /* upper case, as libfdisk prints it */
	char uuid[37];      /* the partition's unique GUID */
	/* The name in UTF-8: 36 UTF-16 code units take at most 108 bytes, plus the NUL. */
	char name[109];
	uint64_t attrs; /* the GPT attribute bits */
};

/* Reads the GPT of the raw image file 'image' and picks its root partition: root_index 0
 * chooses the one partition of type PX_GPT_TYPE_LINUX_FS (an error when there is none or
 * more than one), otherwise the partition with that 1-based number. Fails with
 * PX_EXIT_INPUT when the image has no GPT or no such partition. */
int px_gpt_find_root(const char *image, int root_index, struct px_partition *ret,
                     struct px_err **err);

/* Grows the raw image file 'image' to new_size bytes (a multiple of 512): the file is
 * extended sparsely (ftruncate), the backup GPT header and table move to the new last
 * sectors (their old sectors become a hole), and the root partition (chosen as in
 * px_gpt_find_root; it must be the last partition on the disk) is extended to end just
 * before the last PX_GPT_ALIGN boundary at or below the end of the usable area, as fdisk's
 * default end does. Its start, type GUID, unique GUID, name and attributes are kept, and so
 * is every other byte outside the table.
 *
 * Refused with PX_EXIT_INPUT before the file changes: a new_size below the current size,
 * no GPT, no such partition. A partition that already ends past the aligned end keeps its
 * end (it never shrinks). Growing to the current size writes nothing. The file is changed
 * in place, so callers work on a temporary copy; on a failure after the file was extended,
 * its old size is restored. *ret receives the partition as it is on disk afterwards. */
int px_gpt_grow(const char *image, uint64_t new_size, int root_index, struct px_partition *ret,
                struct px_err **err);

#endif
