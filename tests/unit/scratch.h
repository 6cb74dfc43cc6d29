/* A scratch directory for one test binary: made at the start of main(),
 * files named inside it, shell commands run inside it (the test PKI is made
 * with the openssl CLI at run time, so nothing secret is committed), and
 * removed with all it holds at the end. One directory per binary. */
#ifndef WARD_SCRATCH_H
#define WARD_SCRATCH_H

#include <stdarg.h>
#include <stdlib.h>

#include "test.h"

static const char *scratch__dir;

/* Makes the directory from a mkdtemp() template, which is rewritten in
 * place to the directory's name, so the caller's array names it too. */
static inline void scratch_open(char *tmpl)
{
    scratch__dir = mkdtemp(tmpl);
    ASSERT(scratch__dir);
}

/* The path of a file in the directory; the same pointer for the same name,
 * valid to the end, so configurations may hold it. */
static inline const char *scratch_path(const char *name)
{
    static struct {
        char name[64], path[300];
    } tab[128];
    static int n;
    for (int i = 0; i < n; i++)
        if (strcmp(tab[i].name, name) == 0)
            return tab[i].path;
    ASSERT(n < 128 && strlen(name) < sizeof(tab[0].name));
    snprintf(tab[n].name, sizeof(tab[n].name), "%s", name);
    snprintf(tab[n].path, sizeof(tab[n].path), "%s/%s", scratch__dir, name);
    return tab[n++].path;
}

/* Writes text to a file in the directory, replacing it. */
static inline void scratch_write(const char *name, const char *text)
{
    FILE *f = fopen(scratch_path(name), "w");
    ASSERT(f);
    fputs(text, f);
    ASSERT_EQ(fclose(f), 0);
}

/* Runs a shell command in the directory with its output discarded; the
 * test fails, naming the command, if it fails. */
static inline void scratch_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline void scratch_sh(const char *fmt, ...)
{
    char cmd[2048], full[2300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    snprintf(full, sizeof(full), "cd %s && (%s) >/dev/null 2>&1", scratch__dir, cmd);
    if (system(full) != 0)
        TEST_FAIL_("command failed: %s", cmd);
}

/* Removes the directory and all in it: 0, or -1 if that failed. */
static inline int scratch_close(void)
{
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", scratch__dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Ends main() as TEST_DONE() does, once the directory is removed; if it
 * cannot be, main() returns 1. */
#define SCRATCH_DONE()                                                                             \
    do {                                                                                           \
        if (scratch_close() != 0)                                                                  \
            return 1;                                                                              \
        TEST_DONE();                                                                               \
    } while (0)

#endif
