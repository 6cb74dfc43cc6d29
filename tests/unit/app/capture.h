/* Captures what code under test writes to stdout or stderr (through the
 * file descriptor, so fprintf, fwrite and perror are all seen). */
#ifndef WARD_TEST_CAPTURE_H
#define WARD_TEST_CAPTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

struct capture {
    FILE *stream;
    int fd, saved;
};

static void capture_begin(struct capture *c, FILE *stream)
{
    char path[] = "/tmp/ward-unit-capture-XXXXXX";
    fflush(stream);
    c->stream = stream;
    c->fd = mkstemp(path);
    if (c->fd < 0) {
        perror("mkstemp");
        abort();
    }
    unlink(path);
    c->saved = dup(fileno(stream));
    dup2(c->fd, fileno(stream));
}

/* Ends the capture; returns what was written (free it). */
static char *capture_end(struct capture *c)
{
    fflush(c->stream);
    dup2(c->saved, fileno(c->stream));
    close(c->saved);
    off_t n = lseek(c->fd, 0, SEEK_END);
    char *text = calloc(1, (size_t)n + 1);
    if (!text || pread(c->fd, text, (size_t)n, 0) != n) {
        perror("capture");
        abort();
    }
    close(c->fd);
    return text;
}

#endif
