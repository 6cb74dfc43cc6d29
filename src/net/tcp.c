/* Plain TCP transport, listening sockets and listen URLs. */
#include "net/tcp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/log.h"

/* The accept queue: as deep as the kernel allows (net.core.somaxconn caps
 * it; docs/ARCHITECTURE.md, "Sizing"), so a reconnect storm waits in it
 * instead of having its SYNs dropped and retried a second later. */
#define LISTEN_BACKLOG 65535

static ssize_t tcp_read(void *t, void *buf, size_t len)
{
    struct tcp_transport *tt = t;
    ssize_t n = read(tt->fd, buf, len);
    if (n > 0)
        return n;
    if (n == 0)
        return TRANSPORT_EOF;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
        return TRANSPORT_WANT_READ;
    tt->err = errno;
    return TRANSPORT_ERROR;
}

static ssize_t tcp_write(void *t, const void *buf, size_t len)
{
    struct tcp_transport *tt = t;
    ssize_t n = send(tt->fd, buf, len, MSG_NOSIGNAL);
    if (n >= 0)
        return n;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
        return TRANSPORT_WANT_WRITE;
    tt->err = errno;
    return TRANSPORT_ERROR;
}

static const char *tcp_cause(void *t)
{
    struct tcp_transport *tt = t;
    return tt->err ? strerror(tt->err) : "no error";
}

static void tcp_destroy(void *t)
{
    (void)t; /* the state lives inside the connection */
}

const struct transport_ops tcp_transport_ops = {
    .name = "tcp",
    .handshake = NULL,
    .read = tcp_read,
    .write = tcp_write,
    .cause = tcp_cause,
    .destroy = tcp_destroy,
};

/* see tcp.h */
int tcp_parse_url(const char *url, char *scheme, size_t slen, char *host, size_t hlen,
                  uint16_t *port, char *err, size_t errlen)
{
    const char *rest = url;
    const char *sep = strstr(url, "://");
    snprintf(scheme, slen, "tcp");
    if (sep) {
        snprintf(scheme, slen, "%.*s", (int)(sep - url), url);
        rest = sep + 3;
    }
    const char *colon;
    if (*rest == '[') {
        const char *close = strchr(rest, ']');
        if (!close || close[1] != ':') {
            snprintf(err, errlen, "%s: expected [IPv6]:PORT", url);
            return -1;
        }
        snprintf(host, hlen, "%.*s", (int)(close - rest - 1), rest + 1);
        colon = close + 1;
    } else {
        colon = strrchr(rest, ':');
        if (!colon) {
            snprintf(err, errlen, "%s: expected HOST:PORT", url);
            return -1;
        }
        snprintf(host, hlen, "%.*s", (int)(colon - rest), rest);
    }
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (colon[1] == '\0' || *end != '\0' || p < 0 || p > 65535) {
        snprintf(err, errlen, "%s: bad port '%s'", url, colon + 1);
        return -1;
    }
    *port = (uint16_t)p;
    return 0;
}

/* see tcp.h */
int tcp_listen(const char *host, uint16_t port, uint16_t *bound, char *err, size_t errlen)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    char portstr[8];
    snprintf(portstr, sizeof(portstr), "%u", port);
    int rc = getaddrinfo(*host ? host : NULL, portstr, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "%s:%u: %s", host, port, gai_strerror(rc));
        return -1;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, LISTEN_BACKLOG) < 0) {
        snprintf(err, errlen, "cannot listen on %s:%u: %s", host, port, strerror(errno));
        if (fd >= 0)
            close(fd);
        freeaddrinfo(res);
        return -1;
    }
    freeaddrinfo(res);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    *bound = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                            : ((struct sockaddr_in *)&ss)->sin_port);
    return fd;
}

/* see tcp.h */
void tcp_peer_name(int fd, char *out, size_t len)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    char ip[INET6_ADDRSTRLEN] = "?";
    if (getpeername(fd, (struct sockaddr *)&ss, &sl) < 0) {
        snprintf(out, len, "unknown");
        return;
    }
    if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof(ip));
        snprintf(out, len, "[%s]:%u", ip, ntohs(a->sin6_port));
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &a->sin_addr, ip, sizeof(ip));
        snprintf(out, len, "%s:%u", ip, ntohs(a->sin_port));
    }
}

/* Waits for a non-blocking connect to finish. Returns 0 or an errno. */
static int connect_wait(int fd, int timeout_ms)
{
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    int n = poll(&p, 1, timeout_ms);
    if (n == 0)
        return ETIMEDOUT;
    if (n < 0)
        return errno;
    int err = 0;
    socklen_t len = sizeof(err);
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    return err;
}

/* see tcp.h */
int tcp_connect(const char *host, uint16_t port, int timeout_ms, char *err, size_t errlen)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res, *ai;
    char portstr[8];
    snprintf(portstr, sizeof(portstr), "%u", port);
    int rc = getaddrinfo(host, portstr, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "cannot resolve %s: %s", host, gai_strerror(rc));
        return -1;
    }
    int fd = -1, last = 0;
    for (ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            last = errno;
            continue;
        }
        last = connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 ? 0 : errno;
        if (last == EINPROGRESS)
            last = connect_wait(fd, timeout_ms);
        if (last != 0) {
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0) {
        snprintf(err, errlen, "cannot connect to %s port %u: %s", host, port, strerror(last));
        return -1;
    }
    int one = 1;
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0) /* still usable */
        log_debug("%s port %u: TCP_NODELAY: %s", host, port, strerror(errno));
    return fd;
}

/* The address and port of a socket address, for comparing. */
static bool same_address(const struct sockaddr *a, const struct sockaddr *b)
{
    if (a->sa_family != b->sa_family)
        return false;
    if (a->sa_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    if (a->sa_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
        return x->sin6_port == y->sin6_port &&
               memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
    }
    return false;
}

/* see tcp.h */
bool tcp_listener_matches(int fd, const char *host, uint16_t port)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (port == 0 || getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
        return false;
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    char portstr[8];
    snprintf(portstr, sizeof(portstr), "%u", port);
    if (getaddrinfo(*host ? host : NULL, portstr, &hints, &res) != 0)
        return false;
    bool match = false;
    for (struct addrinfo *ai = res; ai && !match; ai = ai->ai_next)
        match = same_address((const struct sockaddr *)&ss, ai->ai_addr);
    freeaddrinfo(res);
    return match;
}

/* see tcp.h */
int tcp_adopt_listener(int fd, uint16_t *bound, char *err, size_t errlen)
{
    int type = 0, listening = 0;
    socklen_t tl = sizeof(type), ll = sizeof(listening);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) < 0 ||
        getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &ll) < 0 ||
        getsockname(fd, (struct sockaddr *)&ss, &sl) < 0) {
        snprintf(err, errlen, "passed descriptor %d: %s", fd, strerror(errno));
        return -1;
    }
    if (type != SOCK_STREAM || !listening) {
        snprintf(err, errlen, "passed descriptor %d is not a listening stream socket", fd);
        return -1;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 || fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
        snprintf(err, errlen, "passed descriptor %d: %s", fd, strerror(errno));
        return -1;
    }
    *bound = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                            : ((struct sockaddr_in *)&ss)->sin_port);
    return 0;
}
