/* The multiplexing core of pexi-guest, free of I/O so the unit tests drive it directly.
 *
 * Many guest connections share one byte stream to the host (the virtio-serial port or one
 * vsock connection). Each request a guest app sends gets a guest-unique "id" ("g" and a
 * decimal tag) in place of its own, or added when it had none; the host answers carry that
 * id back, which routes each answer to its connection, where the app's own id is put back
 * (or the member removed again). Answers to requests that had no id keep their request
 * order per connection, as the frame protocol promises; answers to requests with an id go
 * out as soon as they arrive.
 *
 * Only the top level of a frame is looked at, and only as far as finding the "id" and
 * "type" members: the PEP parses and validates the whole JSON. This file uses plain libc
 * only: the helper is linked statically and never against libpexi. */
#ifndef PX_GUEST_MUX_H
#define PX_GUEST_MUX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A member's location in a JSON text: [start, end) of the whole member ("key": value)
 * and [vstart, vend) of its value. */
struct px_json_member {
	bool found;
	size_t start, end;
	size_t vstart, vend;
};

/* Finds the top-level member 'key' of the JSON object text[0..len). Returns 0 (with
 * ret->found false when the key is absent), or -1 when the text is not one object or a
 * top-level key holds an escape, appears twice or nesting runs deeper than 256: a key
 * written with escapes could be read as "id" by the host while the scanner missed it. */
int px_json_find(const char *text, size_t len, const char *key, struct px_json_member *ret);

/* Decodes the JSON string value text[0..len) (with its quotes) into a new NUL-terminated
 * string, \uXXXX escapes as UTF-8 (a lone surrogate becomes U+FFFD). NULL when it is not a
 * string or holds a NUL. */
char *px_json_string(const char *text, size_t len);

/* What px_mux_request and px_mux_answer made of a frame. */
enum px_mux_verdict {
	PX_MUX_FORWARD, /* request: tagged and recorded, send *ret to the host */
	PX_MUX_ROUTED,  /* answer: matched a pending request (delivered now or held in order) */
	PX_MUX_CONTROL, /* a frame with a top-level "type" and none of our ids */
	PX_MUX_UNKNOWN, /* answer: an id that is not pending (its connection is gone) */
	PX_MUX_INVALID, /* not a JSON object the scanner accepts */
};

struct px_mux_pending;

struct px_mux {
	struct px_mux_pending *head, *tail; /* every pending request, oldest first */
	uint64_t next_tag;
	size_t n;
};

/* Called with each answer ready for a connection, in the order it must be written. The
 * frame (JSON only, no length prefix) belongs to the callee. */
typedef void (*px_mux_deliver_fn)(void *ctx, int conn, char *frame, size_t len);

void px_mux_init(struct px_mux *m);
/* Frees everything still pending, delivering nothing. */
void px_mux_free(struct px_mux *m);

/* Takes a request frame from connection 'conn'. PX_MUX_FORWARD: *ret (malloc'd, length
 * *ret_len) is the frame to send, with the tagged id as its first member. A frame with a
 * "type" member is PX_MUX_CONTROL and is not recorded: control frames are the helper's
 * own, an app cannot send them. */
enum px_mux_verdict px_mux_request(struct px_mux *m, int conn, const char *frame, size_t len,
                                   char **ret, size_t *ret_len);

/* Takes a frame from the host. For an answer to a pending request, restores the app's id
 * and calls deliver for every answer of that connection that may now be written. */
enum px_mux_verdict px_mux_answer(struct px_mux *m, const char *frame, size_t len,
                                  px_mux_deliver_fn deliver, void *ctx);

/* Answers every pending request with an error frame (code http_error, 'message'), in the
 * order rules above: used when the channel to the host is lost. */
void px_mux_fail_all(struct px_mux *m, const char *message, px_mux_deliver_fn deliver, void *ctx);

/* Answers the pending request 'tag' alone with an error frame (code, message), in the
 * order rules above: used for an answer the helper cannot take (over its frame cap). */
void px_mux_fail_one(struct px_mux *m, uint64_t tag, const char *code, const char *message,
                     px_mux_deliver_fn deliver, void *ctx);

/* Reads our tag from the start of a frame too large to hold: true when text[0..len) begins
 * with {"id":"gN" (blanks allowed), as the PEP writes its answers, id first. */
bool px_mux_prefix_tag(const char *text, size_t len, uint64_t *ret);

/* Forgets the requests of a connection that closed; late answers become PX_MUX_UNKNOWN. */
void px_mux_drop_conn(struct px_mux *m, int conn);

/* Requests of 'conn' still pending (sent and not yet delivered), and the bytes of the
 * answers held back for order. */
size_t px_mux_pending(const struct px_mux *m, int conn, size_t *ret_held_bytes);

/* Writes text[0..len) as a JSON string with quotes into out (size cap); returns the
 * length written, or 0 when it does not fit. */
size_t px_json_quote(const char *text, size_t len, char *out, size_t cap);

#endif
