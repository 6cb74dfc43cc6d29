/* see admin_client.h */
#include "admin_client.h"

#include <ctype.h>
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"
#include "core/clock.h"
#include "core/transport.h"
#include "net/tcp.h"
#include "tls/tls.h"

#define BODY_LIMIT (16u << 20)

struct conn {
    int fd;
    struct tcp_transport tcp;
    const struct transport_ops *ops;
    void *t;
    struct tls_client *tc;
    uint64_t deadline;
};

static int wait_fd(struct conn *c, ssize_t want)
{
    struct pollfd p = {c->fd, want == TRANSPORT_WANT_WRITE ? POLLOUT : POLLIN, 0};
    uint64_t now = clock_mono_ms();
    if (now >= c->deadline)
        return 0;
    return poll(&p, 1, (int)(c->deadline - now));
}

/* Splits http[s]://HOST:PORT[/...]. */
static int split_url(const char *url, bool *tls, char *host, size_t hcap, uint16_t *port, char *err,
                     size_t errlen)
{
    const char *rest = url;
    *tls = strncmp(url, "https://", 8) == 0;
    if (*tls)
        rest += 8;
    else if (strncmp(url, "http://", 7) == 0)
        rest += 7;
    char hp[300], scheme[16];
    snprintf(hp, sizeof(hp), "%.*s", (int)strcspn(rest, "/"), rest);
    if (tcp_parse_url(hp, scheme, sizeof(scheme), host, hcap, port, err, errlen) < 0)
        return -1;
    return 0;
}

static int open_conn(const struct admin_client *ac, struct conn *c, char *err, size_t errlen)
{
    bool tls;
    char host[256];
    uint16_t port;
    if (split_url(ac->url, &tls, host, sizeof(host), &port, err, errlen) < 0)
        return -1;
    c->deadline = clock_mono_ms() + (uint64_t)(ac->timeout_ms > 0 ? ac->timeout_ms : 5000);
    if ((c->fd = tcp_connect(host, port, ac->timeout_ms > 0 ? ac->timeout_ms : 5000, err, errlen)) <
        0)
        return -1;
    c->tcp.fd = c->fd;
    c->ops = &tcp_transport_ops;
    c->t = &c->tcp;
    if (!tls)
        return 0;
    struct tls_client_config tcfg = {.cafile = ac->cafile,
                                     .certfile = ac->certfile,
                                     .keyfile = ac->keyfile,
                                     .insecure = ac->insecure};
    if (!(c->tc = tls_client_new(&tcfg, err, errlen)) ||
        !(c->t = tls_client_transport_new(c->tc, c->fd, host))) {
        if (c->tc)
            snprintf(err, errlen, "out of memory");
        c->t = NULL;
        return -1;
    }
    c->ops = &tls_transport_ops;
    for (;;) {
        ssize_t r = c->ops->handshake(c->t);
        if (r == 1)
            return 0;
        if (r == TRANSPORT_ERROR || wait_fd(c, r) <= 0)
            return snprintf(err, errlen, "%s: TLS: %s", ac->url,
                            r == TRANSPORT_ERROR ? c->ops->cause(c->t) : "timed out"),
                   -1;
    }
}

static void close_conn(struct conn *c)
{
    if (c->t && c->ops && c->ops->destroy)
        c->ops->destroy(c->t);
    tls_client_free(c->tc);
    if (c->fd >= 0)
        close(c->fd);
}

static int send_all(struct conn *c, const char *p, size_t n, char *err, size_t errlen)
{
    while (n) {
        ssize_t w = c->ops->write(c->t, p, n);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
        } else if (w == TRANSPORT_ERROR || w == 0 || wait_fd(c, w) <= 0) {
            return snprintf(err, errlen, "cannot send the request"), -1;
        }
    }
    return 0;
}

/* Reads until the peer closes (the request said Connection: close). */
static int read_all(struct conn *c, struct buf *in, char *err, size_t errlen)
{
    for (;;) {
        if (!ward_ok(buf_reserve(in, 16384)))
            return snprintf(err, errlen, "answer too large"), -1;
        ssize_t r = c->ops->read(c->t, buf_tail(in), buf_room(in));
        if (r > 0)
            buf_commit(in, (size_t)r);
        else if (r == TRANSPORT_EOF)
            return 0;
        else if (r == TRANSPORT_ERROR || wait_fd(c, r) <= 0)
            return snprintf(err, errlen, "%s",
                            r == TRANSPORT_ERROR ? c->ops->cause(c->t) : "no answer in time"),
                   -1;
    }
}

/* "HTTP/1.1 200 OK\r\n...\r\n\r\nBODY" */
static int parse_answer(const struct buf *in, int *status, struct buf *body, char *err,
                        size_t errlen)
{
    const char *p = (const char *)buf_head(in);
    size_t n = buf_len(in);
    const char *end = memmem(p, n, "\r\n\r\n", 4);
    if (n < 12 || strncmp(p, "HTTP/1.", 7) != 0 || !end || !isdigit((unsigned char)p[9]))
        return snprintf(err, errlen, "not an HTTP answer"), -1;
    *status = atoi(p + 9);
    const char *b = end + 4;
    buf_reset(body);
    if (!ward_ok(buf_append(body, b, n - (size_t)(b - p))))
        return snprintf(err, errlen, "answer too large"), -1;
    return 0;
}

/* see admin_client.h */
int admin_client_get(const struct admin_client *ac, const char *path, int *status, struct buf *body,
                     char *err, size_t errlen)
{
    struct conn c = {.fd = -1};
    struct buf in;
    buf_init(&in, BODY_LIMIT);
    char req[1024];
    int n = snprintf(req, sizeof(req),
                     "GET %s HTTP/1.1\r\nHost: ward\r\nUser-Agent: ward-status\r\n%s%s%s"
                     "Connection: close\r\n\r\n",
                     path, ac->key && *ac->key ? "Authorization: Bearer " : "",
                     ac->key && *ac->key ? ac->key : "", ac->key && *ac->key ? "\r\n" : "");
    int rc = -1;
    if (n < 0 || (size_t)n >= sizeof(req)) {
        snprintf(err, errlen, "request too long");
        goto out;
    }
    if (open_conn(ac, &c, err, errlen) < 0 || send_all(&c, req, (size_t)n, err, errlen) < 0 ||
        read_all(&c, &in, err, errlen) < 0 || parse_answer(&in, status, body, err, errlen) < 0)
        goto out;
    rc = 0;
out:
    close_conn(&c);
    buf_free(&in);
    return rc;
}

/* KEY on the first line, the URL (optional) on the second. */
static int read_key_file(const char *path, char *key, size_t kcap, char *url, size_t ucap,
                         bool want_url, char *err, size_t errlen)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return snprintf(err, errlen, "%s: %s", path, strerror(errno)), -1;
    char line[1024] = "";
    if (fgets(line, sizeof(line), f))
        snprintf(key, kcap, "%.*s", (int)strcspn(line, "\r\n"), line);
    if (want_url && fgets(line, sizeof(line), f) && line[0] != '\n')
        snprintf(url, ucap, "%.*s", (int)strcspn(line, "\r\n"), line);
    fclose(f);
    return key[0] ? 0 : (snprintf(err, errlen, "%s: no key in it", path), -1);
}

/* -c FILE: its http.bind (https with a certificate) and data directory. */
static int from_config(const char *path, char *url, size_t ucap, char *dir, size_t dcap, char *err,
                       size_t errlen)
{
    struct ward_config cfg;
    struct cfg_errors errs;
    if (config_load(path, &cfg, &errs) != 0) {
        snprintf(err, errlen, "%s", errs.count ? errs.msgs[0] : path);
        cfg_errors_free(&errs);
        return -1;
    }
    cfg_errors_free(&errs);
    const struct cfg_http *h = &cfg.http;
    if (h->bind || h->nanomq_port) {
        char hp[300];
        if (h->bind)
            snprintf(hp, sizeof(hp), "%s", h->bind);
        else
            snprintf(hp, sizeof(hp), "%s:%u", h->nanomq_ip_addr ? h->nanomq_ip_addr : "127.0.0.1",
                     h->nanomq_port);
        /* A server on every address is asked on loopback. */
        const char *any = strncmp(hp, "0.0.0.0:", 8) == 0 ? hp + 8 : NULL;
        char local[320];
        snprintf(local, sizeof(local), "%s%s", any ? "127.0.0.1:" : "", any ? any : hp);
        snprintf(url, ucap, "%s://%s", h->certfile ? "https" : "http", local);
    }
    const char *d =
        cfg.persistence_dir ? cfg.persistence_dir : (cfg.sqlite_enable ? cfg.sqlite_path : NULL);
    snprintf(dir, dcap, "%s", d ? d : "");
    config_free(&cfg);
    return 0;
}

/* see admin_client.h */
int admin_client_resolve(const struct admin_target *t, char *url, size_t ucap, char *key,
                         size_t kcap, char *err, size_t errlen)
{
    char cfg_url[400] = "", dir[4096] = "", file[4200] = "";
    url[0] = key[0] = '\0';
    if (t->config &&
        from_config(t->config, cfg_url, sizeof(cfg_url), dir, sizeof(dir), err, errlen) < 0)
        return -1;
    if (t->data_dir)
        snprintf(dir, sizeof(dir), "%s", t->data_dir);
    if (t->key)
        snprintf(key, kcap, "%s", t->key);
    else if (t->key_file)
        snprintf(file, sizeof(file), "%s", t->key_file);
    else if (dir[0])
        snprintf(file, sizeof(file), "%s/admin.key", dir);
    if (file[0] && read_key_file(file, key, kcap, url, ucap, !t->url, err, errlen) < 0)
        return -1;
    if (t->url)
        snprintf(url, ucap, "%s", t->url);
    else if (!url[0])
        snprintf(url, ucap, "%s", cfg_url[0] ? cfg_url : "http://127.0.0.1:8081");
    return 0;
}
