/* Running under systemd (app/service.c): the notifications reach
 * NOTIFY_SOCKET only when it is set, and the watchdog pings only while
 * every net worker goes round its loop (net_server_alive), which the first
 * cases check on their own. A worker is stalled by a handler that blocks in
 * on_open until the test lets it go. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "app/capture.h"
#include "app/service.h"
#include "core/clock.h"
#include "net/net.h"
#include "test.h"

/* ---- a worker that can be made to hang ---- */

static pthread_mutex_t hang_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t hang_cond = PTHREAD_COND_INITIALIZER;
static bool hanging, hang_release;

static void *on_open(void *ctx, struct net_conn *c)
{
    pthread_mutex_lock(&hang_lock);
    hanging = true;
    pthread_cond_broadcast(&hang_cond);
    while (!hang_release)
        pthread_cond_wait(&hang_cond, &hang_lock);
    hanging = false;
    pthread_mutex_unlock(&hang_lock);
    return c;
}

static size_t on_data(void *user, const uint8_t *data, size_t len)
{
    return len;
}

static void on_close(void *user, const char *why) {}

static const struct net_handler handler = {on_open, on_data, on_close, NULL};

static struct net_server *start(unsigned workers)
{
    struct net_config cfg = {.workers = workers, .max_input = 4096, .max_output = 4096};
    struct net_server *s = net_server_new(&cfg, &handler, NULL);
    ASSERT(s != NULL);
    ASSERT(!net_server_alive(s, 1000, NULL, NULL)); /* not started: not alive */
    ASSERT_EQ(net_server_start(s), 0);
    return s;
}

static void stop(struct net_server *s)
{
    net_server_stop(s);
    net_server_join(s);
    ASSERT(!net_server_alive(s, 1000, NULL, NULL)); /* joined: not alive */
    net_server_free(s);
}

/* Adopted sockets go to worker 0, whose on_open then blocks; returns the
 * test's end of the pair once the worker is inside on_open. */
static int hang_worker0(struct net_server *s)
{
    int sv[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    pthread_mutex_lock(&hang_lock);
    hang_release = false;
    pthread_mutex_unlock(&hang_lock);
    ASSERT_EQ(net_server_adopt(s, sv[0], "hang"), 0);
    pthread_mutex_lock(&hang_lock);
    while (!hanging)
        pthread_cond_wait(&hang_cond, &hang_lock);
    pthread_mutex_unlock(&hang_lock);
    return sv[1];
}

static void release_worker0(int peer)
{
    pthread_mutex_lock(&hang_lock);
    hang_release = true;
    pthread_cond_broadcast(&hang_cond);
    pthread_mutex_unlock(&hang_lock);
    close(peer);
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* Polls net_server_alive until it answers `want` (at most 10 s). */
static bool wait_alive(struct net_server *s, uint64_t max_age, bool want, unsigned *stalled,
                       uint64_t *age)
{
    for (int i = 0; i < 1000; i++) {
        if (net_server_alive(s, max_age, stalled, age) == want)
            return true;
        sleep_ms(10);
    }
    return false;
}

TEST(alive_idle_workers)
{
    struct net_server *s = start(3);
    ASSERT(net_server_alive(s, 1000, NULL, NULL));
    /* Idle workers wake every 100 ms: still alive well after start. */
    sleep_ms(400);
    unsigned w = 99;
    ASSERT(net_server_alive(s, 1000, &w, NULL));
    ASSERT_EQ(w, 99); /* untouched when alive */
    stop(s);
}

TEST(alive_names_the_stalled_worker)
{
    struct net_server *s = start(2);
    int peer = hang_worker0(s);
    unsigned w = 99;
    uint64_t age = 0;
    ASSERT(wait_alive(s, 200, false, &w, &age));
    ASSERT_EQ(w, 0);
    ASSERT(age > 200);
    release_worker0(peer);
    ASSERT(wait_alive(s, 200, true, NULL, NULL)); /* turning again */
    stop(s);
}

/* ---- notifications ---- */

struct notify_sock {
    char dir[40], path[64];
    int fd;
};

static void notify_open(struct notify_sock *n)
{
    snprintf(n->dir, sizeof(n->dir), "/tmp/ward-unit-sd-XXXXXX");
    ASSERT(mkdtemp(n->dir) != NULL);
    snprintf(n->path, sizeof(n->path), "%s/notify", n->dir);
    n->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ASSERT(n->fd >= 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", n->path);
    ASSERT_EQ(bind(n->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    struct timeval tv = {5, 0}; /* bounds every wait for a message */
    ASSERT_EQ(setsockopt(n->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
    ASSERT_EQ(setenv("NOTIFY_SOCKET", n->path, 1), 0);
}

static void notify_close(struct notify_sock *n)
{
    unsetenv("NOTIFY_SOCKET");
    close(n->fd);
    unlink(n->path);
    rmdir(n->dir);
}

/* The next datagram (at most 5 s away), NUL-terminated in buf. */
static const char *notify_next(struct notify_sock *n, char *buf, size_t cap)
{
    ssize_t got = recv(n->fd, buf, cap - 1, 0);
    if (got < 0)
        TEST_FAIL_("no notification within 5 s: %s", strerror(errno));
    buf[got] = '\0';
    return buf;
}

/* Whether a datagram is waiting now. */
static bool notify_waiting(struct notify_sock *n)
{
    char c;
    return recv(n->fd, &c, 1, MSG_DONTWAIT | MSG_PEEK) >= 0;
}

static void notify_drain(struct notify_sock *n)
{
    char buf[256];
    while (recv(n->fd, buf, sizeof(buf), MSG_DONTWAIT) >= 0)
        ;
}

TEST(notify_states)
{
    struct notify_sock n;
    char buf[256];
    notify_open(&n);
    service_ready(3);
    ASSERT_STR_EQ(notify_next(&n, buf, sizeof(buf)), "READY=1\nSTATUS=serving 3 listeners");
    service_ready(1);
    ASSERT_STR_EQ(notify_next(&n, buf, sizeof(buf)), "READY=1\nSTATUS=serving 1 listener");
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    unsigned long long before = (unsigned long long)ts.tv_sec * 1000000u + ts.tv_nsec / 1000u;
    service_reloading();
    clock_gettime(CLOCK_MONOTONIC, &ts);
    unsigned long long after = (unsigned long long)ts.tv_sec * 1000000u + ts.tv_nsec / 1000u;
    unsigned long long usec = 0;
    ASSERT_EQ(sscanf(notify_next(&n, buf, sizeof(buf)),
                     "RELOADING=1\nSTATUS=reloading\nMONOTONIC_USEC=%llu", &usec),
              1);
    ASSERT(usec >= before && usec <= after); /* CLOCK_MONOTONIC, in microseconds */
    service_stopping();
    ASSERT_STR_EQ(notify_next(&n, buf, sizeof(buf)), "STOPPING=1\nSTATUS=shutting down");
    ASSERT(!notify_waiting(&n));
    notify_close(&n);
}

TEST(notify_without_socket_sends_nothing)
{
    struct notify_sock n;
    notify_open(&n);
    unsetenv("NOTIFY_SOCKET");
    struct capture cap;
    capture_begin(&cap, stderr);
    service_ready(2);
    service_reloading();
    service_stopping();
    char *err = capture_end(&cap);
    ASSERT_STR_EQ(err, ""); /* nothing to tell is not an error */
    free(err);
    ASSERT(!notify_waiting(&n));
    notify_close(&n);
}

TEST(notify_to_a_missing_socket_is_logged)
{
    ASSERT_EQ(setenv("NOTIFY_SOCKET", "/nonexistent/ward-unit/notify", 1), 0);
    struct capture cap;
    capture_begin(&cap, stderr);
    service_ready(2);
    char *err = capture_end(&cap);
    unsetenv("NOTIFY_SOCKET");
    if (!strstr(err, "systemd: cannot send READY=1"))
        TEST_FAIL_("stderr: \"%s\"", err);
    free(err);
}

/* ---- socket activation: each passed socket taken by its listener ---- */

/* Puts fd at `at` (systemd's SD_LISTEN_FDS_START and on), keeping what was
 * there in *saved (-1: nothing). */
static void place_fd(int fd, int at, int *saved)
{
    *saved = fd != at && fcntl(at, F_GETFD) >= 0 ? dup(at) : -1;
    ASSERT_EQ(dup2(fd, at), at);
    if (fd != at)
        close(fd);
}

static void restore_fd(int at, int saved)
{
    close(at);
    if (saved >= 0) {
        ASSERT_EQ(dup2(saved, at), at);
        close(saved);
    }
}

static void listen_env(const char *fds, long pid, const char *names)
{
    char p[32];
    snprintf(p, sizeof(p), "%ld", pid);
    ASSERT_EQ(setenv("LISTEN_FDS", fds, 1), 0);
    ASSERT_EQ(setenv("LISTEN_PID", p, 1), 0);
    if (names)
        ASSERT_EQ(setenv("LISTEN_FDNAMES", names, 1), 0);
    else
        unsetenv("LISTEN_FDNAMES");
}

static void listen_unenv(void)
{
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDNAMES");
}

TEST(listen_fds_taken_by_their_listener)
{
    char err[1024] = "untouched";
    struct net_config cfg = {.workers = 1, .max_input = 4096, .max_output = 4096};
    listen_unenv();
    struct net_server *none = net_server_new(&cfg, &handler, NULL);
    ASSERT_EQ(service_offer_listen_fds(none, err, sizeof(err)), 0); /* none passed */
    ASSERT_EQ(service_check_listen_fds(none, err, sizeof(err)), 0);
    ASSERT_STR_EQ(err, "untouched");
    net_server_free(none);

    /* A listening TCP socket at fd 3, a unix datagram socket at fd 4. */
    int tcp = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ASSERT_EQ(bind(tcp, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ASSERT_EQ(listen(tcp, 1), 0);
    socklen_t sl = sizeof(sa);
    ASSERT_EQ(getsockname(tcp, (struct sockaddr *)&sa, &sl), 0);
    int dgram = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ASSERT(tcp >= 0 && dgram >= 0);
    int saved3, saved4;
    place_fd(tcp, 3, &saved3);
    place_fd(dgram, 4, &saved4);
    char url[64];
    snprintf(url, sizeof(url), "tcp://127.0.0.1:%u", ntohs(sa.sin_port));

    struct net_server *s = net_server_new(&cfg, &handler, NULL);
    listen_env("2", (long)getpid() + 1, NULL); /* meant for another process */
    ASSERT_EQ(service_offer_listen_fds(s, err, sizeof(err)), 0);
    net_server_free(s);

    s = net_server_new(&cfg, &handler, NULL);
    listen_env("2", (long)getpid(), "ward-mqtt.socket:ward-odd.socket");
    ASSERT_EQ(service_offer_listen_fds(s, err, sizeof(err)), 2);
    ASSERT(getenv("LISTEN_FDS") == NULL); /* not passed on to what ward starts */
    /* The port is bound by fd 3 already: binding it again would fail, so
     * a listener on it proves fd 3 was taken. */
    ASSERT_EQ(net_server_listen(s, url, err, sizeof(err)), 0);
    ASSERT_EQ(service_check_listen_fds(s, err, sizeof(err)), -1);
    ASSERT_STR_EQ(err, "systemd passed socket no listener of the configuration has the address "
                       "of; add the listener or remove it from the .socket unit: fd 4 "
                       "(ward-odd.socket): unix, unbound");
    net_server_free(s); /* closes fd 3, the listener's now */
    if (fcntl(3, F_GETFD) >= 0)
        TEST_FAIL_("fd 3 is still open");

    /* A passed socket with the address but not listening is refused. */
    int bound = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_EQ(bind(bound, (struct sockaddr *)&sa, sizeof(sa)), 0);
    int none3;
    place_fd(bound, 3, &none3);
    ASSERT_EQ(none3, -1);
    s = net_server_new(&cfg, &handler, NULL);
    listen_env("1", (long)getpid(), NULL);
    ASSERT_EQ(service_offer_listen_fds(s, err, sizeof(err)), 1);
    ASSERT_EQ(net_server_listen(s, url, err, sizeof(err)), -1);
    ASSERT_STR_EQ(err, "passed descriptor 3 is not a listening stream socket");
    net_server_free(s);

    listen_env("many", (long)getpid(), NULL);
    s = net_server_new(&cfg, &handler, NULL);
    ASSERT_EQ(service_offer_listen_fds(s, err, sizeof(err)), -1);
    ASSERT(strncmp(err, "LISTEN_FDS: ", 12) == 0);
    net_server_free(s);

    listen_unenv();
    close(3);
    restore_fd(4, saved4);
    restore_fd(3, saved3);
}

/* ---- the watchdog ---- */

static void watchdog_env(const char *usec, long pid)
{
    char p[32];
    snprintf(p, sizeof(p), "%ld", pid);
    ASSERT_EQ(setenv("WATCHDOG_USEC", usec, 1), 0);
    ASSERT_EQ(setenv("WATCHDOG_PID", p, 1), 0);
}

static void watchdog_unenv(void)
{
    unsetenv("WATCHDOG_USEC");
    unsetenv("WATCHDOG_PID");
}

TEST(watchdog_only_when_asked)
{
    struct notify_sock n;
    notify_open(&n);
    struct net_server *s = start(1);
    watchdog_unenv();
    ASSERT(service_watchdog_start(s) == NULL); /* no WATCHDOG_USEC */
    watchdog_env("200000", (long)getpid() + 1);
    ASSERT(service_watchdog_start(s) == NULL); /* meant for another process */
    watchdog_env("0", (long)getpid());
    ASSERT(service_watchdog_start(s) == NULL); /* no interval */
    watchdog_env("bogus", (long)getpid());
    ASSERT(service_watchdog_start(s) == NULL);
    unsetenv("NOTIFY_SOCKET");
    watchdog_env("200000", (long)getpid());
    ASSERT(service_watchdog_start(s) == NULL); /* nobody to ping */
    watchdog_unenv();
    service_watchdog_stop(NULL);
    stop(s);
    ASSERT(!notify_waiting(&n));
    notify_close(&n);
}

/* Polls until *counter reaches want (at most 10 s). */
static bool wait_count(uint64_t (*get)(const struct service_watchdog *),
                       const struct service_watchdog *wd, uint64_t want)
{
    for (int i = 0; i < 1000 && get(wd) < want; i++)
        sleep_ms(10);
    return get(wd) >= want;
}

TEST(watchdog_pings_while_workers_turn)
{
    struct notify_sock n;
    char buf[256];
    notify_open(&n);
    struct net_server *s = start(2);
    watchdog_env("200000", (long)getpid());
    struct capture cap;
    capture_begin(&cap, stderr);
    struct service_watchdog *wd = service_watchdog_start(s);
    ASSERT(wd != NULL);
    for (int i = 0; i < 3; i++)
        ASSERT_STR_EQ(notify_next(&n, buf, sizeof(buf)), "WATCHDOG=1");

    /* Worker 0 stops turning: once a check has seen it (after
     * SERVICE_MIN_STALL_MS), no ping goes out however many checks pass. */
    int peer = hang_worker0(s);
    ASSERT(wait_count(service_watchdog_withheld, wd, 1));
    notify_drain(&n);
    uint64_t sent = service_watchdog_sent(wd), withheld = service_watchdog_withheld(wd);
    ASSERT(wait_count(service_watchdog_withheld, wd, withheld + 3));
    ASSERT_EQ(service_watchdog_sent(wd), sent);
    ASSERT(!notify_waiting(&n));

    /* Let it go: the pings come back. */
    release_worker0(peer);
    ASSERT_STR_EQ(notify_next(&n, buf, sizeof(buf)), "WATCHDOG=1");
    service_watchdog_stop(wd);
    char *err = capture_end(&cap);
    if (!strstr(err, "watchdog: net worker 0 has not gone round its event loop for ") ||
        !strstr(err, "WATCHDOG=1 withheld") || !strstr(err, "every net worker turns again"))
        TEST_FAIL_("stderr: \"%s\"", err);
    /* The stall is logged once, not once per check. */
    ASSERT(strstr(strstr(err, "has not gone round") + 1, "has not gone round") == NULL);
    free(err);

    watchdog_unenv();
    stop(s);
    notify_close(&n);
}

/* A notification socket that went away: one line says so, not one per
 * ping. */
TEST(watchdog_send_failure_logged_once)
{
    struct net_server *s = start(1);
    ASSERT_EQ(setenv("NOTIFY_SOCKET", "/nonexistent/ward-unit/notify", 1), 0);
    watchdog_env("200000", (long)getpid());
    struct capture cap;
    capture_begin(&cap, stderr);
    struct service_watchdog *wd = service_watchdog_start(s);
    ASSERT(wd != NULL);
    sleep_ms(600); /* several checks, 100 ms apart */
    service_watchdog_stop(wd);
    char *err = capture_end(&cap);
    static const char line[] = "systemd: cannot send WATCHDOG=1";
    const char *first = strstr(err, line);
    if (!first || strstr(first + sizeof(line) - 1, line))
        TEST_FAIL_("stderr: \"%s\"", err);
    free(err);
    watchdog_unenv();
    unsetenv("NOTIFY_SOCKET");
    stop(s);
}

int main(void)
{
    RUN(alive_idle_workers);
    RUN(alive_names_the_stalled_worker);
    RUN(notify_states);
    RUN(notify_without_socket_sends_nothing);
    RUN(notify_to_a_missing_socket_is_logged);
    RUN(listen_fds_taken_by_their_listener);
    RUN(watchdog_only_when_asked);
    RUN(watchdog_pings_while_workers_turn);
    RUN(watchdog_send_failure_logged_once);
    TEST_DONE();
}
