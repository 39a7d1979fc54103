/* The frame layer of the PEP protocol (DESIGN.md): a 4-byte big-endian length, then UTF-8
 * JSON. Requests carry "method", control frames carry "type" (hello, poweroff). Decoding
 * is bounded: the length is checked before anything is allocated, and every string,
 * header list and body has a cap. Encoding writes the length prefix too, so a caller
 * sends the buffer as it is. */
#ifndef PX_PEP_FRAME_H
#define PX_PEP_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pep/pep.h"

struct px_buf;
struct px_err;

#define PX_FRAME_HEADER       4
#define PX_FRAME_MAX_DEFAULT  (16u << 20)
#define PX_FRAME_MAX_ID       128
#define PX_FRAME_MAX_HEADERS  256
#define PX_FRAME_MAX_INSTANCE 128
#define PX_FRAME_MAX_MEMBERS  32 /* top-level members of one frame */

enum px_frame_type {
	PX_FRAME_REQUEST,
	PX_FRAME_HELLO,
	PX_FRAME_POWEROFF,
};

struct px_frame_limits {
	uint32_t max_frame; /* JSON bytes after the length prefix */
	size_t max_headers; /* header pairs in one request */
	size_t max_body;    /* decoded request body bytes */
};

struct px_frame {
	enum px_frame_type type;
	/* The request's id as JSON text without quotes, or NULL. A numeric id is echoed as a
	 * number, a string id as a string. */
	char *id;
	bool id_numeric;
	struct px_pep_request req; /* PX_FRAME_REQUEST; req.id is a copy of id */
	char *instance_id;         /* PX_FRAME_HELLO, "" when absent */
	char *guest;               /* PX_FRAME_HELLO, NULL when absent */
};

/* Reads the length prefix and checks it against max before anything is allocated. An empty
 * frame counts as malformed. */
int px_frame_length(const uint8_t hdr[PX_FRAME_HEADER], uint32_t max, uint32_t *ret_len,
                    struct px_err **err);

/* Decodes one frame's JSON. On failure *ret still holds the id when one could be read, so
 * the refusal can name the request it answers; the caller frees *ret with px_frame_free
 * either way. */
int px_frame_decode(const uint8_t *buf, size_t len, const struct px_frame_limits *lim,
                    struct px_frame *ret, struct px_err **err);
void px_frame_free(struct px_frame *f);

/* Appends a response frame (length prefix included) answering 'id' to out. Fails only when
 * the frame would not fit a 32-bit length. */
int px_frame_encode_response(const char *id, bool id_numeric, const struct px_pep_response *r,
                             struct px_buf *out, struct px_err **err);
/* Appends an error response frame: status 0, no headers or body, error {code, message}. */
void px_frame_encode_error(const char *id, bool id_numeric, enum px_pep_code code,
                           const char *message, struct px_buf *out);
/* Appends a request frame (for clients: tests, benchmarks, the guest helper). */
int px_frame_encode_request(const char *id, bool id_numeric, const struct px_pep_request *r,
                            struct px_buf *out, struct px_err **err);
/* Appends {"type":"hello","ok":true} or {"type":"poweroff"}. */
void px_frame_encode_hello_ok(struct px_buf *out);
void px_frame_encode_poweroff(struct px_buf *out);

/* Standard base64 with padding. decode accepts padded or unpadded input and rejects any
 * other byte; *ret_len is at most max. */
void px_base64_encode(const unsigned char *p, size_t n, struct px_buf *out);
int px_base64_decode(const char *s, size_t n, size_t max, unsigned char **ret, size_t *ret_len,
                     struct px_err **err);

#endif
