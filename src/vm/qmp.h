/* A minimal QMP client: enough to press the ACPI power button (system_powerdown) or quit
 * QEMU. One connection per command; every read has a deadline so a wedged QEMU cannot
 * stall the stop ladder. */
#ifndef PX_QMP_H
#define PX_QMP_H

struct px_err;

/* Connects to the QMP unix socket at 'path', negotiates capabilities and runs 'command'
 * (no arguments). Fails when QEMU answers with an error or not within timeout_ms. When
 * ret_json is not NULL it receives the command's "return" value as JSON text. */
int px_qmp_command(const char *path, const char *command, int timeout_ms, char **ret_json,
                   struct px_err **err);

#endif
