/* privs: looking up system.user, checking files as that user, dropping
 * root. Needs root (the tests of this project run as root) and the usual
 * `nobody` user; without them it says so and passes nothing else. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <pwd.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "app/privs.h"
#include "test.h"

static char dir[] = "/tmp/ward-unit-privs-XXXXXX";
static char open_file[4200], closed_file[4200], sub[4200];

static void setup(void)
{
    ASSERT(mkdtemp(dir) != NULL);
    ASSERT_EQ(chmod(dir, 0755), 0);
    snprintf(open_file, sizeof(open_file), "%s/cert.pem", dir);
    snprintf(closed_file, sizeof(closed_file), "%s/key.pem", dir);
    snprintf(sub, sizeof(sub), "%s/data", dir);
    int fd = open(open_file, O_CREAT | O_WRONLY, 0644);
    ASSERT(fd >= 0);
    close(fd);
    fd = open(closed_file, O_CREAT | O_WRONLY, 0600);
    ASSERT(fd >= 0);
    close(fd);
    ASSERT_EQ(mkdir(sub, 0755), 0);
}

static void teardown(void)
{
    unlink(open_file);
    unlink(closed_file);
    rmdir(sub);
    rmdir(dir);
}

TEST(lookup)
{
    struct privs_target t;
    char err[256];
    ASSERT_EQ(privs_lookup("nobody", NULL, &t, err, sizeof(err)), 0);
    struct passwd *pw = getpwnam("nobody");
    ASSERT_EQ(t.uid, pw->pw_uid);
    ASSERT_EQ(t.gid, pw->pw_gid);
    ASSERT_STR_EQ(t.user, "nobody");
    ASSERT(t.ngroups >= 1); /* at least its primary group */
    char num[32];
    snprintf(num, sizeof(num), "%u", (unsigned)pw->pw_uid);
    ASSERT_EQ(privs_lookup(num, "0", &t, err, sizeof(err)), 0);
    ASSERT_STR_EQ(t.user, "nobody");
    ASSERT_EQ(t.gid, 0);
    ASSERT_STR_EQ(t.group, "root");
    /* Negative: unknown names are errors naming them. */
    ASSERT_EQ(privs_lookup("no-such-user-ward", NULL, &t, err, sizeof(err)), -1);
    ASSERT(strstr(err, "no user 'no-such-user-ward'"));
    ASSERT_EQ(privs_lookup("nobody", "no-such-group-ward", &t, err, sizeof(err)), -1);
    ASSERT(strstr(err, "no group 'no-such-group-ward'"));
    ASSERT_EQ(privs_lookup("", NULL, &t, err, sizeof(err)), -1);
}

TEST(check)
{
    struct privs_target t;
    char err[512];
    ASSERT_EQ(privs_lookup("nobody", NULL, &t, err, sizeof(err)), 0);
    struct privs_path ok[] = {
        {open_file, "the certificate", PRIVS_READ},
        {NULL, "unset", PRIVS_READ},
        {dir, "the CA directory", PRIVS_READ_DIR},
        {"/nonexistent-ward/ward.db", "the store", PRIVS_WRITE_FILE},
    };
    ASSERT_EQ(privs_check(&t, ok, 4, err, sizeof(err)), 0);
    ASSERT_EQ(geteuid(), 0); /* switched back */
    ASSERT_EQ(getegid(), 0);

    /* A root-only key: the error names the file, what it is and the user. */
    struct privs_path key[] = {{open_file, "the certificate", PRIVS_READ},
                               {closed_file, "the key of tls://x", PRIVS_READ}};
    ASSERT_EQ(privs_check(&t, key, 2, err, sizeof(err)), -1);
    ASSERT(strstr(err, closed_file));
    ASSERT(strstr(err, "the key of tls://x"));
    ASSERT(strstr(err, "user 'nobody' cannot read"));
    ASSERT(strstr(err, "Permission denied"));
    ASSERT_EQ(geteuid(), 0);

    /* A data directory root owns: not writable; the user's own: fine. */
    struct privs_path data[] = {{sub, "the data directory", PRIVS_WRITE_DIR}};
    ASSERT_EQ(privs_check(&t, data, 1, err, sizeof(err)), -1);
    ASSERT(strstr(err, "cannot create files in"));
    ASSERT(strstr(err, sub));
    ASSERT_EQ(chown(sub, t.uid, t.gid), 0);
    ASSERT_EQ(privs_check(&t, data, 1, err, sizeof(err)), 0);
    /* A store file left by a run as root is not writable for the user. */
    struct privs_path db[] = {{open_file, "the store", PRIVS_WRITE_FILE}};
    ASSERT_EQ(privs_check(&t, db, 1, err, sizeof(err)), -1);
    ASSERT(strstr(err, "cannot write"));
    ASSERT_EQ(geteuid(), 0);
}

/* In a child: after the drop every id is the user's and root is gone. */
TEST(drop)
{
    struct privs_target t;
    char err[512];
    ASSERT_EQ(privs_lookup("nobody", NULL, &t, err, sizeof(err)), 0);
    pid_t pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) {
        if (privs_drop(&t, err, sizeof(err)) != 0)
            _exit(1);
        uid_t r, e, s;
        if (getresuid(&r, &e, &s) != 0 || r != t.uid || e != t.uid || s != t.uid)
            _exit(2);
        if (setuid(0) == 0 || seteuid(0) == 0 || errno != EPERM)
            _exit(3);
        if (open(closed_file, O_RDONLY) >= 0) /* root's file is out of reach now */
            _exit(4);
        /* Checking needs root: a clear error, not a half switch. */
        struct privs_path p[] = {{open_file, "x", PRIVS_READ}};
        if (privs_check(&t, p, 1, err, sizeof(err)) != -1 || !strstr(err, "needs root"))
            _exit(5);
        _exit(0);
    }
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT(WIFEXITED(status));
    ASSERT_EQ(WEXITSTATUS(status), 0);
}

/* Not relied on (ward drops before any thread starts), but checked: with
 * glibc the drop reaches a thread that was already running too, as POSIX
 * asks (its setxid broadcast); the kernel alone would change only the
 * calling thread. */
static int wake_fds[2];
static _Atomic pid_t other_tid;

static void *idle_thread(void *arg)
{
    (void)arg;
    other_tid = gettid();
    char c;
    ssize_t r = read(wake_fds[0], &c, 1); /* until the test is done */
    (void)r;
    return NULL;
}

/* The real uid of thread tid, from /proc; -1 if it cannot say. */
static long thread_uid(pid_t tid)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/self/task/%d/status", (int)tid);
    FILE *f = fopen(path, "r");
    long uid = -1;
    while (f && fgets(line, sizeof(line), f))
        if (strncmp(line, "Uid:", 4) == 0)
            uid = strtol(line + 4, NULL, 10);
    if (f)
        fclose(f);
    return uid;
}

TEST(drop_reaches_running_threads)
{
    struct privs_target t;
    char err[512];
    ASSERT_EQ(privs_lookup("nobody", NULL, &t, err, sizeof(err)), 0);
    pid_t pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) {
        pthread_t th;
        if (pipe(wake_fds) != 0 || pthread_create(&th, NULL, idle_thread, NULL) != 0)
            _exit(1);
        for (int i = 0; i < 5000 && !other_tid; i++) /* 5 s at most */
            usleep(1000);
        if (!other_tid)
            _exit(5);
        if (privs_drop(&t, err, sizeof(err)) != 0)
            _exit(2);
        long uid = thread_uid(other_tid);
        if (write(wake_fds[1], "x", 1) != 1 || pthread_join(th, NULL) != 0)
            _exit(3);
        _exit(uid == (long)t.uid ? 0 : 4);
    }
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT(WIFEXITED(status));
    ASSERT_EQ(WEXITSTATUS(status), 0);
}

int main(void)
{
    if (geteuid() != 0 || !getpwnam("nobody")) {
        printf("skipped: needs root and a 'nobody' user\n");
        return 0;
    }
    setup();
    RUN(lookup);
    RUN(check);
    RUN(drop);
    RUN(drop_reaches_running_threads);
    teardown();
    TEST_DONE();
}
