/* see store.h */
#include "pki/store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/vec.h"

const char *pki_path(const struct pki_store *s, const char *rel, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s/%s", s->dir, rel);
    return buf;
}

/* mkdir -p for the parents of path (they get the usual 0755 less umask). */
static int mkdir_parents(const char *path, char *err, size_t errlen)
{
    char buf[4096];
    snprintf(buf, sizeof(buf), "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST) {
            snprintf(err, errlen, "%s: %s", buf, strerror(errno));
            return -1;
        }
        *p = '/';
    }
    return 0;
}

static int mkdir_private(const char *path, char *err, size_t errlen)
{
    if (mkdir(path, 0700) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

static int read_index(struct pki_store *s, char *err, size_t errlen)
{
    char path[4096], line[1024];
    FILE *f = fopen(pki_path(s, "index.txt", path, sizeof(path)), "r");
    if (!f)
        return errno == ENOENT ? 0 : (snprintf(err, errlen, "%s: %s", path, strerror(errno)), -1);
    unsigned no = 0;
    while (fgets(line, sizeof(line), f)) {
        no++;
        if (line[0] == '#' || line[0] == '\n')
            continue;
        struct pki_entry e = {0};
        int k = sscanf(line, "%63s %c %31s %ld %d %15s %127s %255[^\n]", e.serial, &e.status,
                       e.not_after, &e.revoked_at, &e.reason, e.kind, e.role, e.name);
        if (k != 8 || (e.status != 'V' && e.status != 'R')) {
            snprintf(err, errlen, "%s:%u: malformed index line", path, no);
            fclose(f);
            return -1;
        }
        if (!ward_ok(VEC_RESERVE(s->e, s->cap, s->n + 1))) {
            snprintf(err, errlen, "%s:%u: out of memory", path, no);
            fclose(f);
            return -1;
        }
        s->e[s->n++] = e;
    }
    fclose(f);
    return 0;
}

/* A directory of the PKI must be one: not a symbolic link (for private/
 * and certs/), owned by this user or root, not writable by group or others
 * (pki_check_owner). Whoever can change it can swap in a CA key of their
 * own or read the ones issued. A missing subdirectory is fine here. */
static int check_dir(const char *path, bool top, char *err, size_t errlen)
{
    struct stat st;
    /* The top directory may be reached through a link (a user's choice);
     * what is inside it may not. */
    if ((top ? stat(path, &st) : lstat(path, &st)) != 0) {
        if (errno == ENOENT && !top)
            return 0;
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "%s: not a directory%s", path,
                 S_ISLNK(st.st_mode) ? " (a symbolic link: refusing it)" : "");
        return -1;
    }
    char why[512];
    if (pki_check_owner(path, &st, "a PKI directory", why, sizeof(why)) < 0) {
        snprintf(err, errlen, "%s: %s", path, why);
        return -1;
    }
    return 0;
}

/* see store.h */
int pki_open(struct pki_store *s, const char *dir, bool create, char *err, size_t errlen)
{
    memset(s, 0, sizeof(*s));
    s->lock_fd = -1;
    snprintf(s->dir, sizeof(s->dir), "%s", dir);
    char path[4096];
    struct stat st;
    if (stat(dir, &st) != 0) {
        if (!create) {
            snprintf(err, errlen, "%s: no PKI here (run `ward cert init --dir %s` first)", dir,
                     dir);
            return -1;
        }
        if (mkdir_parents(dir, err, errlen) < 0 || mkdir_private(dir, err, errlen) < 0)
            return -1;
    }
    if (check_dir(dir, true, err, errlen) < 0)
        return -1;
    if (create && (mkdir_private(pki_path(s, "private", path, sizeof(path)), err, errlen) < 0 ||
                   mkdir_private(pki_path(s, "certs", path, sizeof(path)), err, errlen) < 0))
        return -1;
    if (check_dir(pki_path(s, "private", path, sizeof(path)), false, err, errlen) < 0 ||
        check_dir(pki_path(s, "certs", path, sizeof(path)), false, err, errlen) < 0)
        return -1;
    s->lock_fd = open(pki_path(s, ".lock", path, sizeof(path)),
                      O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (s->lock_fd < 0 || flock(s->lock_fd, LOCK_EX) != 0) {
        snprintf(err, errlen, "%s: cannot lock: %s", path, strerror(errno));
        return -1;
    }
    return read_index(s, err, errlen);
}

void pki_close(struct pki_store *s)
{
    free(s->e);
    if (s->issuer != s->root)
        X509_free(s->issuer);
    X509_free(s->root);
    EVP_PKEY_free(s->issuer_key);
    if (s->lock_fd >= 0)
        close(s->lock_fd); /* releases the lock */
    memset(s, 0, sizeof(*s));
    s->lock_fd = -1;
}

/* see store.h */
int pki_load_ca(struct pki_store *s, const char *password, char *err, size_t errlen)
{
    char path[4096], why[512];
    bool inter = access(pki_path(s, "intermediate.crt", path, sizeof(path)), F_OK) == 0;
    if (!(s->root = pki_read_cert(pki_path(s, "ca.crt", path, sizeof(path)), why, sizeof(why)))) {
        snprintf(err, errlen, "%s: %s (missing CA: run `ward cert init`)", path, why);
        return -1;
    }
    s->issuer = s->root;
    if (inter && !(s->issuer = pki_read_cert(pki_path(s, "intermediate.crt", path, sizeof(path)),
                                             why, sizeof(why)))) {
        s->issuer = s->root;
        snprintf(err, errlen, "%s: %s", path, why);
        return -1;
    }
    pki_path(s, inter ? "private/intermediate.key" : "private/ca.key", path, sizeof(path));
    if (!(s->issuer_key = pki_read_key(path, password, why, sizeof(why)))) {
        snprintf(err, errlen, "%s: %s", path, why);
        return -1;
    }
    if (X509_check_private_key(s->issuer, s->issuer_key) != 1) {
        snprintf(err, errlen, "%s does not match the CA certificate", path);
        return -1;
    }
    return 0;
}

/* see store.h */
int pki_save_index(struct pki_store *s, char *err, size_t errlen)
{
    char path[4096], tmp[4200];
    pki_path(s, "index.txt", path, sizeof(path));
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!f) {
        if (fd >= 0)
            close(fd);
        snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
        return -1;
    }
    fprintf(f, "# serial status not-after revoked-at reason kind role name\n");
    for (size_t i = 0; i < s->n; i++) {
        const struct pki_entry *e = &s->e[i];
        fprintf(f, "%s %c %s %ld %d %s %s %s\n", e->serial, e->status, e->not_after, e->revoked_at,
                e->reason, e->kind, e->role[0] ? e->role : "-", e->name);
    }
    bool ok = fflush(f) == 0 && fsync(fileno(f)) == 0;
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

/* see store.h */
struct pki_entry *pki_find(struct pki_store *s, const char *key)
{
    struct pki_entry *best = NULL;
    for (size_t i = 0; i < s->n; i++) {
        struct pki_entry *e = &s->e[i];
        if (strcasecmp(e->serial, key) == 0)
            return e;
        if (strcmp(e->name, key) == 0 && (!best || e->status == 'V'))
            best = e;
    }
    return best;
}

/* see store.h */
int pki_record(struct pki_store *s, X509 *cert, const char *name, const char *role,
               const char *kind)
{
    if (!ward_ok(VEC_RESERVE(s->e, s->cap, s->n + 1)))
        return -1;
    struct pki_entry *e = &s->e[s->n++];
    memset(e, 0, sizeof(*e));
    pki_serial_hex(cert, e->serial, sizeof(e->serial));
    pki_time_iso(X509_get0_notAfter(cert), e->not_after, sizeof(e->not_after));
    e->status = 'V';
    e->reason = -1;
    snprintf(e->name, sizeof(e->name), "%s", name);
    snprintf(e->role, sizeof(e->role), "%s", role && *role ? role : "-");
    for (char *p = e->role; *p; p++)
        if (*p == ' ')
            *p = '_';
    snprintf(e->kind, sizeof(e->kind), "%s", kind);
    return 0;
}

/* see store.h */
int pki_write_current_crl(struct pki_store *s, int days, char *err, size_t errlen)
{
    struct pki_revoked *list = calloc(s->n ? s->n : 1, sizeof(*list));
    size_t n = 0;
    for (size_t i = 0; list && i < s->n; i++)
        if (s->e[i].status == 'R' && strcmp(s->e[i].kind, "root") != 0)
            list[n++] =
                (struct pki_revoked){s->e[i].serial, (time_t)s->e[i].revoked_at, s->e[i].reason};
    X509_CRL *crl = list ? pki_crl_new(s->issuer, s->issuer_key, list, n, days, err, errlen) : NULL;
    free(list);
    if (!crl)
        return -1;
    char path[4096];
    int rc = pki_write_crl(pki_path(s, "crl.pem", path, sizeof(path)), crl, err, errlen);
    X509_CRL_free(crl);
    return rc;
}
