/* Plain TCP clients for the tests of servers on loopback: connect with a
 * read deadline, and read an exact number of bytes. */
#ifndef WARD_NET_FIXTURE_H
#define WARD_NET_FIXTURE_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "test.h"

/* A blocking TCP connection to 127.0.0.1:port whose reads give up after
 * five seconds (so a test that waits for bytes that never come fails). */
static inline int dial(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
        TEST_FAIL_("connect failed");
    return fd;
}

/* A TCP port on 127.0.0.1 that nothing listens on (as the kernel gave it
 * out and took it back): connecting to it is refused. */
static inline uint16_t closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    ASSERT_EQ(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    ASSERT_EQ(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* Reads until n bytes came, the peer closed, or the read deadline passed;
 * returns how many came. */
static inline size_t read_n(int fd, char *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    return got;
}

/* Reads one line up to its \r\n (a NATS reply), NUL-terminated without it;
 * fails the test at the read deadline or past cap. */
static inline void read_crlf_line(int fd, char *buf, size_t cap)
{
    size_t n = 0;
    while (n + 1 < cap) {
        if (read(fd, buf + n, 1) != 1)
            TEST_FAIL_("no line (got '%.*s')", (int)n, buf);
        if (n && buf[n - 1] == '\r' && buf[n] == '\n') {
            buf[n - 1] = '\0';
            return;
        }
        n++;
    }
    TEST_FAIL_("line too long");
}

#endif
