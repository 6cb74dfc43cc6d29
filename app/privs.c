/* Privilege checks and the drop to system.user (see privs.h). */
#include "privs.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A decimal id, or -1 if s is not one. */
static long long parse_id(const char *s)
{
    char *end;
    if (!*s || *s < '0' || *s > '9')
        return -1;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    return *end || errno || v >= UINT_MAX ? -1 : (long long)v;
}

static int lookup_group(const char *group, struct privs_target *t, char *err, size_t errlen)
{
    struct group gr, *g = NULL;
    char buf[16384];
    long long id = parse_id(group);
    if (id >= 0)
        getgrgid_r((gid_t)id, &gr, buf, sizeof(buf), &g);
    else
        getgrnam_r(group, &gr, buf, sizeof(buf), &g);
    if (!g && id < 0)
        return snprintf(err, errlen, "no group '%s' on this system", group), -1;
    t->gid = g ? g->gr_gid : (gid_t)id;
    snprintf(t->group, sizeof(t->group), "%s", g ? g->gr_name : group);
    return 0;
}

/* see privs.h */
int privs_lookup(const char *user, const char *group, struct privs_target *t, char *err,
                 size_t errlen)
{
    struct passwd pw, *p = NULL;
    char buf[16384];
    memset(t, 0, sizeof(*t));
    long long id = parse_id(user);
    if (id >= 0)
        getpwuid_r((uid_t)id, &pw, buf, sizeof(buf), &p);
    else
        getpwnam_r(user, &pw, buf, sizeof(buf), &p);
    if (!p)
        return snprintf(err, errlen, "no user '%s' on this system", user), -1;
    t->uid = p->pw_uid;
    t->gid = p->pw_gid;
    snprintf(t->user, sizeof(t->user), "%s", p->pw_name);
    struct group gr, *g = NULL;
    char gbuf[16384];
    getgrgid_r(t->gid, &gr, gbuf, sizeof(gbuf), &g);
    snprintf(t->group, sizeof(t->group), "%s", g ? g->gr_name : "?");
    /* The supplementary groups initgroups() would give it (with its
     * primary group, which getgrouplist always includes). */
    int n = PRIVS_MAX_GROUPS;
    if (getgrouplist(p->pw_name, p->pw_gid, t->groups, &n) < 0)
        return snprintf(err, errlen, "user '%s' is in more than %d groups", user, PRIVS_MAX_GROUPS),
               -1;
    t->ngroups = n;
    if (group && lookup_group(group, t, err, errlen) < 0)
        return -1;
    return 0;
}

/* The effective ids become the target's; false if any step failed (the
 * caller switches back). setgroups needs root, so it goes first, and the
 * uid last. */
static bool become(const struct privs_target *t)
{
    return setgroups((size_t)t->ngroups, t->groups) == 0 && setegid(t->gid) == 0 &&
           seteuid(t->uid) == 0;
}

struct saved_ids {
    uid_t euid;
    gid_t egid;
    gid_t groups[PRIVS_MAX_GROUPS];
    int ngroups;
};

static bool restore(const struct saved_ids *s)
{
    return seteuid(s->euid) == 0 && setegid(s->egid) == 0 &&
           setgroups((size_t)s->ngroups, s->groups) == 0;
}

/* Opens p as the current effective ids; 0 or an errno. */
static int try_path(const struct privs_path *p)
{
    char tmp[PATH_MAX];
    int fd = -1, e = 0;
    switch (p->need) {
    case PRIVS_READ:
        fd = open(p->path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        break;
    case PRIVS_READ_DIR:
        fd = open(p->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd >= 0 && faccessat(AT_FDCWD, p->path, X_OK, AT_EACCESS) != 0)
            e = errno;
        break;
    case PRIVS_WRITE_DIR:
        if (snprintf(tmp, sizeof(tmp), "%s/.ward-user-check-XXXXXX", p->path) >= (int)sizeof(tmp))
            return ENAMETOOLONG;
        fd = mkstemp(tmp);
        if (fd >= 0)
            unlink(tmp);
        break;
    case PRIVS_WRITE_FILE:
        fd = open(p->path, O_RDWR | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0 && errno == ENOENT)
            return 0; /* not made yet: the writable directory will hold it */
        break;
    default:
        return EINVAL;
    }
    if (fd < 0)
        return errno;
    close(fd);
    return e;
}

/* see privs.h */
int privs_check(const struct privs_target *t, const struct privs_path *paths, size_t n, char *err,
                size_t errlen)
{
    struct saved_ids s = {.euid = geteuid(), .egid = getegid()};
    if (s.euid != 0)
        return snprintf(err, errlen, "switching to user '%s' needs root", t->user), -1;
    s.ngroups = getgroups(PRIVS_MAX_GROUPS, s.groups);
    if (s.ngroups < 0)
        return snprintf(err, errlen, "getgroups: %s", strerror(errno)), -1;
    int rc = 0, e = 0;
    size_t bad = 0;
    if (!become(t)) {
        snprintf(err, errlen, "cannot take the ids of user '%s': %s", t->user, strerror(errno));
        rc = -1;
        bad = n; /* no path to blame */
    }
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (!paths[i].path || !*paths[i].path)
            continue;
        if ((e = try_path(&paths[i])) != 0) {
            bad = i;
            rc = -1;
        }
    }
    /* Back to root whatever happened: a failure here leaves the process
     * half switched, which only exiting can mend. */
    if (!restore(&s)) {
        snprintf(err, errlen, "cannot switch back from user '%s': %s", t->user, strerror(errno));
        return -1;
    }
    if (rc < 0 && e && bad < n && paths[bad].path)
        snprintf(err, errlen, "user '%s' cannot %s %s (%s): %s", t->user,
                 paths[bad].need == PRIVS_WRITE_DIR    ? "create files in"
                 : paths[bad].need == PRIVS_WRITE_FILE ? "write"
                                                       : "read",
                 paths[bad].path, paths[bad].what, strerror(e));
    return rc;
}

/* see privs.h */
int privs_drop(const struct privs_target *t, char *err, size_t errlen)
{
    if (setgroups((size_t)t->ngroups, t->groups) != 0)
        return snprintf(err, errlen, "setgroups: %s", strerror(errno)), -1;
    if (setresgid(t->gid, t->gid, t->gid) != 0)
        return snprintf(err, errlen, "setresgid(%u): %s", (unsigned)t->gid, strerror(errno)), -1;
    if (setresuid(t->uid, t->uid, t->uid) != 0)
        return snprintf(err, errlen, "setresuid(%u): %s", (unsigned)t->uid, strerror(errno)), -1;
    uid_t ru, eu, su;
    gid_t rg, eg, sg;
    if (getresuid(&ru, &eu, &su) != 0 || getresgid(&rg, &eg, &sg) != 0 || ru != t->uid ||
        eu != t->uid || su != t->uid || rg != t->gid || eg != t->gid || sg != t->gid)
        return snprintf(err, errlen, "the ids did not all change to %u:%u", (unsigned)t->uid,
                        (unsigned)t->gid),
               -1;
    /* With every uid changed, root is gone, unless the target is root
     * itself: then there was nothing to drop. */
    if (t->uid != 0 && (setuid(0) == 0 || seteuid(0) == 0))
        return snprintf(err, errlen, "root could be regained after the drop"), -1;
    if (t->gid != 0 && t->uid != 0 && setegid(0) == 0)
        return snprintf(err, errlen, "group 0 could be regained after the drop"), -1;
    return 0;
}
