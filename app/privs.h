/* Running `ward serve` as an unprivileged user (system.user, --user).
 *
 * Started as root, ward opens its listeners first (ports below 1024 need
 * root), then checks as the target user that every file a reload reads
 * again is readable and the data directory writable, and only then drops
 * root for good. The check switches only the effective ids (and the
 * supplementary groups) and switches them back; the drop sets all of them.
 *
 * Threads: `ward serve` calls both before it starts any thread, so each
 * call changes the one thread there is. (glibc would apply setuid, setgid
 * and setgroups to every thread of the process anyway, through its setxid
 * signal, as POSIX requires, which tests/unit/app/test_privs.c checks; the
 * temporary seteuid of the check would then hit every thread too, which is
 * why it must run before any starts.) */
#ifndef WARD_APP_PRIVS_H
#define WARD_APP_PRIVS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define PRIVS_MAX_GROUPS 64

struct privs_target {
    char user[64], group[64];
    uid_t uid;
    gid_t gid;
    gid_t groups[PRIVS_MAX_GROUPS]; /* supplementary, as initgroups would set them */
    int ngroups;
};

/* Looks up `user` (a name or a numeric uid) and `group` (a name, a number,
 * or NULL for the user's primary group) with the user's supplementary
 * groups. 0, or -1 with "no user 'x' on this system" (or the group's) in
 * err. */
int privs_lookup(const char *user, const char *group, struct privs_target *t, char *err,
                 size_t errlen);

/* A file the target must be able to read (PRIVS_READ), a directory it
 * must be able to read (PRIVS_READ_DIR: a CA path) or one it must be able
 * to create files in (PRIVS_WRITE_DIR: the data directory), and a file it
 * must be able to write if it exists (PRIVS_WRITE_FILE: ward.db). `what`
 * says what the path is for, in the error. */
enum privs_need { PRIVS_READ, PRIVS_READ_DIR, PRIVS_WRITE_DIR, PRIVS_WRITE_FILE };
struct privs_path {
    const char *path; /* NULL entries are skipped */
    const char *what;
    enum privs_need need;
};

/* Checks every path as the target: the effective gid, uid and the
 * supplementary groups are switched to the target's, each file is opened
 * (a directory to write in gets a temporary file, removed at once), and the
 * ids are switched back. Needs an effective uid of 0. 0, or -1 with the
 * first failure in err, naming the path, what it is for, the user and the
 * cause. */
int privs_check(const struct privs_target *t, const struct privs_path *paths, size_t n, char *err,
                size_t errlen);

/* Drops root for good: supplementary groups, gid, then uid (real, effective
 * and saved), then verifies root cannot be regained. Call before any
 * thread starts. 0, or -1 with the cause in err. */
int privs_drop(const struct privs_target *t, char *err, size_t errlen);

#endif
