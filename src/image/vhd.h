/* The convert stage: pexi's own reader of Microsoft VHD images (the "Virtual Hard Disk Image
 * Format Specification": fixed and dynamic disks), written out as a sparse raw file.
 *
 * Every structure is checked before it is used: footer and dynamic header cookies, versions
 * and checksums; the virtual size (non-zero, at most 2040 GiB); the block size (a power of
 * two, 512 bytes to 256 MiB); the block allocation table (BAT), whose every allocated entry
 * must lie inside the file, clear of the metadata and of every other block. Differencing
 * disks are refused (they need their parent). A bad image fails with PX_EXIT_INPUT and a
 * message naming the file, the offset and the reason, e.g.
 *   'disk.vhd': offset 209715200: bad footer cookie (expected "conectix")
 *   'disk.vhd': BAT entry 17 at offset 1536 points past the end of the file
 *
 * The virtual size follows qemu-img, so `qemu-img compare` agrees with pexi's output: the
 * CHS geometry for images made by Virtual PC ("vpc ") and older QEMU ("qemu"), the footer's
 * current size for every other creator (Hyper-V "win ", QEMU force_size "qem2", Azure,
 * disk2vhd, XenServer...) and for images whose geometry is the maximum 65535/16/255. */
#ifndef PX_VHD_H
#define PX_VHD_H

#include <stddef.h>
#include <stdint.h>

struct px_err;

enum px_image_format {
	PX_IMAGE_RAW,
	PX_IMAGE_VHD_FIXED,
	PX_IMAGE_VHD_DYNAMIC,
};

/* Detects the format of an image file from its footer: a "conectix" footer at the end
 * means a VHD, fixed or dynamic as the footer says (a dynamic disk also carries a copy of
 * the footer at offset 0, so a damaged or truncated one is still recognised as a VHD and
 * refused later rather than passed through as raw). Anything else is raw. A file shorter
 * than one 512-byte sector is refused, as is a differencing or unknown disk type. */
int px_image_detect(const char *path, enum px_image_format *ret, struct px_err **err);

/* Converts a VHD (fixed or dynamic) or passes a raw image through, writing a sparse raw
 * file at out_path atomically (temporary file, fsync, rename): unallocated blocks, sectors
 * the block bitmap marks as absent, and every all-zero 4 KiB run become holes. A raw input
 * is reflinked where the filesystem can, else copied extent by extent, keeping holes.
 * *ret_virtual_size (may be NULL) receives the size of the raw file. On failure the
 * previous file at out_path, if any, is left untouched. */
int px_vhd_convert(const char *in_path, const char *out_path, uint64_t *ret_virtual_size,
                   struct px_err **err);

/* Parses a VHD image held in memory and checks every structure, reading every block as
 * the conversion would, but writes nothing. The parser is the one px_vhd_convert uses:
 * this entry point exists for the fuzzer. */
int px_vhd_check_buffer(const uint8_t *buf, size_t len, struct px_err **err);

#endif
