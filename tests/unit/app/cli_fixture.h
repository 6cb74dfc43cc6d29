/* Runs a command line through the function that parses it, as main() would,
 * and keeps what was printed: the harness of the app/ command tests. */
#ifndef WARD_TEST_CLI_FIXTURE_H
#define WARD_TEST_CLI_FIXTURE_H

#include "app/capture.h"
#include "test.h"

/* A command line, its name first: CLI_ARGS("serve", "--workers", "2"). */
#define CLI_ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})

/* What the last cli_run printed to stdout and to stderr. */
static char *out_text, *err_text;

/* Copies the NULL-terminated args into an argv that lives to the end (a
 * parser may keep pointers into it); returns argc. */
static inline int cli_argv(const char *const *args, char ***argv)
{
    static char *copy[96];
    int argc = 0;
    for (; args[argc]; argc++) {
        ASSERT(argc < 95);
        copy[argc] = (char *)args[argc];
    }
    copy[argc] = NULL;
    *argv = copy;
    return argc;
}

/* Runs cmd on args (CLI_ARGS) with stdout and stderr captured into
 * out_text and err_text; returns its status. */
static inline int cli_run(int (*cmd)(int, char **), const char *const *args)
{
    char **argv;
    int argc = cli_argv(args, &argv);
    struct capture o, e;
    free(out_text);
    free(err_text);
    capture_begin(&o, stdout);
    capture_begin(&e, stderr);
    int rc = cmd(argc, argv);
    err_text = capture_end(&e);
    out_text = capture_end(&o);
    return rc;
}

/* The command line `call` is refused: status `status`, and stderr holds
 * `want` and points at --help. `what` names the call in the failure. */
#define CLI_REFUSED(status, want, call, what)                                                      \
    do {                                                                                           \
        int rc__ = (call);                                                                         \
        if (rc__ != (status) || !strstr(err_text, want) || !strstr(err_text, "--help"))            \
            TEST_FAIL_("%s: status %d, stderr \"%s\", wanted \"%s\"", what, rc__, err_text, want); \
    } while (0)

#endif
