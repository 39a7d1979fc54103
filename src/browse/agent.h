/* A client of pexi-agent's command interface (templates/agent/pexi-agent.mjs): one JSON
 * object per line each way, over a unix socket. On the host the socket is the instance's
 * browser channel (browser.sock, bridged into the guest); in the host tests it is the
 * agent's own socket. The agent is inside the sandbox, so its answers are untrusted:
 * every line is capped and parsed strictly. */
#ifndef PX_BROWSE_AGENT_H
#define PX_BROWSE_AGENT_H

#include <stddef.h>

struct px_err;
struct px_agent;

/* Largest answer line accepted: a full-page screenshot in base64 fits with room. */
#define PX_AGENT_MAX_LINE (64u << 20)

/* Connects to the agent's command socket at 'path', giving up after timeout_ms per
 * command. */
int px_agent_connect(const char *path, int timeout_ms, struct px_agent **ret, struct px_err **err);
void px_agent_close(struct px_agent *a);

/* Navigates the top-level page to 'url' and waits for its load event; *ret_url is where
 * it ended up (after redirects). */
int px_agent_navigate(struct px_agent *a, const char *url, char **ret_url, struct px_err **err);
/* The visible text of the page (document.body.innerText). */
int px_agent_text(struct px_agent *a, char **ret_text, struct px_err **err);
/* A PNG screenshot of the whole page. */
int px_agent_screenshot(struct px_agent *a, unsigned char **ret_png, size_t *ret_len,
                        struct px_err **err);

#endif
