/* Reading a secret (a password) for the ward commands. */
#ifndef WARD_APP_SECRET_H
#define WARD_APP_SECRET_H

#include <stddef.h>

/* Shows prompt and reads one line without echo when standard input is a
 * terminal; otherwise reads the first line of standard input. The line end
 * is removed. Returns 0, or -1 at end of input. */
int secret_read(const char *prompt, char *buf, size_t cap);

#endif
