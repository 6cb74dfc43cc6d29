/* ward passwd: the password file it writes (one PBKDF2 hash per user, mode
 * 0600) is one the broker's loader reads and checks passwords against;
 * changing, adding and deleting users; the password from the first line of
 * standard input, or asked for twice on a terminal; --bcrypt hashes; and
 * every refusal, with its message, status, and the file left as it was. */
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <termios.h>

#include "app/cli_fixture.h"
#include "app/commands.h"
#include "auth/nats_users.h"
#include "auth/passwd.h"
#include "scratch.h"
#include "test.h"

#define PASSWD(...)         cli_run(cmd_passwd, CLI_ARGS("passwd", __VA_ARGS__))
#define REFUSED(want, call) CLI_REFUSED(2, want, call, #call)

/* Standard input from now on: text (not a terminal, so read once). */
static void feed_stdin(const char *text)
{
    scratch_write("stdin", text);
    ASSERT(freopen(scratch_path("stdin"), "r", stdin));
}

/* The file's bytes (free them); NULL if there is no file. */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *text = calloc(1, 65536);
    ASSERT(text);
    size_t n = fread(text, 1, 65535, f);
    ASSERT(n < 65535);
    fclose(f);
    return text;
}

/* Loads path as the broker does and checks user's password. */
static enum passwd_verdict verify(const char *path, const char *user, const char *pw)
{
    struct passwd_db db;
    char err[512];
    passwd_db_init(&db);
    if (passwd_load(&db, path, err, sizeof(err)) != 0)
        TEST_FAIL_("%s does not load: %s", path, err);
    enum passwd_verdict v =
        passwd_verify(&db, user, strlen(user), (const uint8_t *)pw, strlen(pw), NULL);
    passwd_db_free(&db);
    return v;
}

/* `ward passwd FILE USER` with pw on standard input; 0 and its report. */
static void set_user(const char *file, const char *user, const char *pw_line)
{
    feed_stdin(pw_line);
    ASSERT_EQ(PASSWD(file, user), 0);
    ASSERT_STR_EQ(out_text, "");
    char want[400];
    snprintf(want, sizeof(want), "%s: user '%s' set\n", file, user);
    ASSERT_STR_EQ(err_text, want);
}

TEST(creates_the_file_with_a_hash_the_broker_reads)
{
    const char *f = scratch_path("new.passwd");
    set_user(f, "alice", "s3cret\n");
    struct stat st;
    ASSERT_EQ(stat(f, &st), 0);
    ASSERT_EQ(st.st_mode & 0777, 0600); /* hashes are not for everyone */
    char *text = slurp(f);
    ASSERT(strncmp(text, "# ward password file", 20) == 0);
    const char *line = strstr(text, "\n\"alice\" = \"$pbkdf2-sha512$100000$");
    ASSERT(line);
    ASSERT(!strstr(text, "s3cret")); /* never in the clear */
    free(text);
    ASSERT_EQ(verify(f, "alice", "s3cret"), PASSWD_OK);
    ASSERT_EQ(verify(f, "alice", "s3cre"), PASSWD_WRONG);
    ASSERT_EQ(verify(f, "alice", "s3cret\n"), PASSWD_WRONG); /* the line end is not kept */
    ASSERT_EQ(verify(f, "bob", "s3cret"), PASSWD_NO_USER);
}

TEST(changes_and_adds_users)
{
    const char *f = scratch_path("users.passwd");
    set_user(f, "alice", "first\n");
    char *before = slurp(f);
    set_user(f, "alice", "second\r\n"); /* a CRLF line end is removed too */
    ASSERT_EQ(verify(f, "alice", "second"), PASSWD_OK);
    ASSERT_EQ(verify(f, "alice", "first"), PASSWD_WRONG);
    set_user(f, "bob", "only this line\nnot this one\n");
    ASSERT_EQ(verify(f, "bob", "only this line"), PASSWD_OK);
    set_user(f, "carol", "no line end");
    ASSERT_EQ(verify(f, "carol", "no line end"), PASSWD_OK);
    /* Setting the same password again makes a new hash (a fresh salt). */
    set_user(f, "dave", "same\n");
    char *one = slurp(f);
    set_user(f, "dave", "same\n");
    char *two = slurp(f);
    ASSERT(strcmp(one, two) != 0);
    ASSERT(strcmp(before, one) != 0);
    free(before);
    free(one);
    free(two);
}

TEST(deletes_a_user)
{
    const char *f = scratch_path("del.passwd");
    set_user(f, "alice", "a-pw\n");
    set_user(f, "bob", "b-pw\n");
    ASSERT_EQ(PASSWD("-D", f, "bob"), 0);
    char want[400];
    snprintf(want, sizeof(want), "%s: user 'bob' deleted\n", f);
    ASSERT_STR_EQ(err_text, want);
    ASSERT_EQ(verify(f, "bob", "b-pw"), PASSWD_NO_USER);
    ASSERT_EQ(verify(f, "alice", "a-pw"), PASSWD_OK);
    /* A user who is not there: status 1, and the file stays as it was. */
    char *before = slurp(f);
    ASSERT_EQ(PASSWD(f, "-D", "bob"), 1);
    snprintf(want, sizeof(want), "ward passwd: %s: no user 'bob'\n", f);
    ASSERT_STR_EQ(err_text, want);
    char *after = slurp(f);
    ASSERT_STR_EQ(after, before);
    free(before);
    free(after);
    /* Deleting from a file that does not exist creates nothing. */
    const char *none = scratch_path("none.passwd");
    ASSERT_EQ(PASSWD("-D", none, "bob"), 1);
    ASSERT(strstr(err_text, "no user 'bob'"));
    ASSERT_EQ(access(none, F_OK), -1);
}

/* `ward passwd FILE USER` with stdin refused: status 1, stderr exactly
 * "ward passwd: " want, and FILE as it was. */
static void refused_input(const char *file, const char *user, const char *stdin_text,
                          const char *want)
{
    char *before = slurp(file);
    feed_stdin(stdin_text);
    int rc = PASSWD(file, user);
    char full[300];
    snprintf(full, sizeof(full), "ward passwd: %s\n", want);
    if (rc != 1 || strcmp(err_text, full) != 0)
        TEST_FAIL_("user '%s', stdin \"%s\": status %d, stderr \"%s\", wanted \"%s\"", user,
                   stdin_text, rc, err_text, full);
    char *after = slurp(file);
    ASSERT((before == NULL) == (after == NULL));
    if (before)
        ASSERT_STR_EQ(after, before);
    free(before);
    free(after);
}

TEST(bad_input_is_refused)
{
    const char *none = scratch_path("never.passwd"), *f = scratch_path("kept.passwd");
    set_user(f, "alice", "pw\n");
    static const char no_pw[] = "no password given on standard input";
    static const char empty[] = "empty password refused";
    static const char bad_user[] =
        "invalid user name (empty, or a quote, backslash or control character)";
    refused_input(none, "alice", "", no_pw);
    refused_input(none, "alice", "\n", empty);
    refused_input(none, "alice", "\r\n", empty);
    refused_input(f, "alice", "", no_pw);
    refused_input(f, "alice", "\n", empty);
    refused_input(f, "", "pw\n", bad_user);
    refused_input(f, "a\"b", "pw\n", bad_user);
    refused_input(f, "a\\b", "pw\n", bad_user);
    refused_input(f, "a\tb", "pw\n", bad_user);
    ASSERT_EQ(verify(f, "alice", "pw"), PASSWD_OK);
}

TEST(a_file_it_cannot_read_or_write)
{
    /* A plaintext entry (NanoMQ's format) is not read past: the error
     * names the line, and the file is not rewritten. */
    const char *f = scratch_path("plain.passwd");
    scratch_write("plain.passwd", "\"bob\" = \"plain\"\n");
    char want[400];
    snprintf(want, sizeof(want), "%s:1: bob: plaintext or unknown password format", f);
    feed_stdin("pw\n");
    ASSERT_EQ(PASSWD(f, "alice"), 1);
    ASSERT(strncmp(err_text, "ward passwd: ", 13) == 0 && strstr(err_text, want));
    char *text = slurp(f);
    ASSERT_STR_EQ(text, "\"bob\" = \"plain\"\n");
    free(text);
    /* A directory that does not exist: nothing is written. */
    feed_stdin("pw\n");
    ASSERT_EQ(PASSWD("/nonexistent/dir/x.passwd", "alice"), 1);
    ASSERT(strncmp(err_text, "ward passwd: /nonexistent/dir/x.passwd", 38) == 0);
    ASSERT(strstr(err_text, "No such file or directory\n"));
}

TEST(bcrypt_hash_on_stdout)
{
    feed_stdin("nats-pw\n");
    ASSERT_EQ(PASSWD("--bcrypt", "--cost", "4"), 0);
    ASSERT_STR_EQ(err_text, "");
    ASSERT_EQ(strlen(out_text), AUTH_BCRYPT_HASH_LEN + 1);
    ASSERT_EQ(out_text[AUTH_BCRYPT_HASH_LEN], '\n');
    out_text[AUTH_BCRYPT_HASH_LEN] = '\0';
    ASSERT(strncmp(out_text, "$2b$04$", 7) == 0);
    ASSERT_EQ(auth_bcrypt_cost(out_text), 4);
    ASSERT(auth_bcrypt_verify(out_text, "nats-pw"));
    ASSERT(!auth_bcrypt_verify(out_text, "nats-pw\n"));
    ASSERT(!auth_bcrypt_verify(out_text, "other"));
    /* Without --cost: bcrypt's usual 11 (as nats-server's tool uses). */
    feed_stdin("pw\n");
    ASSERT_EQ(PASSWD("--bcrypt"), 0);
    ASSERT(strncmp(out_text, "$2b$11$", 7) == 0);
    /* No password: nothing on stdout, status 1. */
    feed_stdin("");
    ASSERT_EQ(PASSWD("--bcrypt", "--cost", "4"), 1);
    ASSERT_STR_EQ(out_text, "");
    ASSERT_STR_EQ(err_text, "ward passwd: no password given on standard input\n");
    feed_stdin("\n");
    ASSERT_EQ(PASSWD("--bcrypt", "--cost", "4"), 1);
    ASSERT_STR_EQ(out_text, "");
    ASSERT_STR_EQ(err_text, "ward passwd: empty password refused\n");
}

/* -c: a NanoMQ password file (plaintext) hashed in place, what the
 * broker's refusal of such a file tells the user to run. */
TEST(converts_a_plaintext_file)
{
    const char *f = scratch_path("nanomq.passwd");
    scratch_write("nanomq.passwd", "# NanoMQ\n\"admin\": \"public\"\n\"dev\" = \"s3cret\"\n");
    struct passwd_db db;
    char err[512];
    passwd_db_init(&db);
    ASSERT_EQ(passwd_load(&db, f, err, sizeof(err)), -1);
    ASSERT(strstr(err, "run `ward passwd -c "));
    passwd_db_free(&db);
    ASSERT_EQ(PASSWD("-c", f), 0);
    char want[400];
    snprintf(want, sizeof(want), "%s: 2 plaintext passwords hashed\n", f);
    ASSERT_STR_EQ(err_text, want);
    ASSERT_EQ(verify(f, "admin", "public"), PASSWD_OK);
    ASSERT_EQ(verify(f, "dev", "s3cret"), PASSWD_OK);
    ASSERT_EQ(verify(f, "dev", "public"), PASSWD_WRONG);
    char *text = slurp(f);
    ASSERT(!strstr(text, "public") && !strstr(text, "s3cret"));
    /* Again: nothing left to hash, the file is not rewritten. */
    ASSERT_EQ(PASSWD("-c", f), 0);
    snprintf(want, sizeof(want), "%s: 0 plaintext passwords hashed\n", f);
    ASSERT_STR_EQ(err_text, want);
    char *again = slurp(f);
    ASSERT_STR_EQ(again, text);
    free(again);
    free(text);
    /* Another program's hash is not taken for a password; nothing written. */
    scratch_write("crypt.passwd", "\"a\" = \"x\"\n\"b\" = \"$6$salt$hash\"\n");
    const char *c = scratch_path("crypt.passwd");
    ASSERT_EQ(PASSWD("-c", c), 1);
    ASSERT(strstr(err_text, "crypt.passwd:2: b: a hash of another scheme"));
    text = slurp(c);
    ASSERT_STR_EQ(text, "\"a\" = \"x\"\n\"b\" = \"$6$salt$hash\"\n");
    free(text);
    ASSERT_EQ(PASSWD("-c", scratch_path("missing.passwd")), 1);
}

TEST(command_line_refusals)
{
    const char *f = scratch_path("usage.passwd");
    REFUSED("ward passwd: FILE and USER are needed", PASSWD(f));
    REFUSED("ward passwd: FILE and USER are needed", cli_run(cmd_passwd, CLI_ARGS("passwd")));
    REFUSED("ward passwd: FILE and USER are needed", PASSWD("-D", f));
    REFUSED("ward passwd: unexpected argument 'extra'", PASSWD(f, "alice", "extra"));
    REFUSED("ward passwd: --bcrypt takes no FILE, USER, -D or -c", PASSWD("--bcrypt", f));
    REFUSED("ward passwd: --bcrypt takes no FILE, USER, -D or -c", PASSWD("--bcrypt", f, "alice"));
    REFUSED("ward passwd: --bcrypt takes no FILE, USER, -D or -c", PASSWD("--bcrypt", "-D"));
    REFUSED("ward passwd: --bcrypt takes no FILE, USER, -D or -c", PASSWD("--bcrypt", "-c"));
    REFUSED("ward passwd: -c takes FILE alone (no USER or -D)", PASSWD("-c", f, "alice"));
    REFUSED("ward passwd: -c takes FILE alone (no USER or -D)", PASSWD("-c", "-D", f));
    REFUSED("ward passwd: -c takes FILE alone (no USER or -D)", PASSWD("-c"));
    REFUSED("ward passwd: --cost goes with --bcrypt", PASSWD("--cost", "5", f, "alice"));
    REFUSED("ward passwd: --cost: '3' is not a number from 4 to 16",
            PASSWD("--bcrypt", "--cost", "3"));
    REFUSED("ward passwd: --cost: '17' is not a number from 4 to 16",
            PASSWD("--bcrypt", "--cost", "17"));
    REFUSED("ward passwd: --cost: missing argument N", PASSWD("--bcrypt", "--cost"));
    REFUSED("ward passwd: unknown option '--delete'", PASSWD("--delete", f, "alice"));
    ASSERT_EQ(access(f, F_OK), -1); /* none of them wrote anything */
}

/* ---- at a terminal ---------------------------------------------------------
 *
 * On a terminal the password is asked for twice, without echo. Standard
 * input becomes a pseudo-terminal whose other side (the master) types each
 * line once ward passwd is waiting for it: setting the terminal quiet
 * flushes what was typed before, so a line typed too early would be lost.
 * In packet mode with EXTPROC, the master is told of every change of the
 * terminal's settings; a line is typed each time echo has gone off (the
 * flush comes before that change). Every wait is a poll with a deadline. */

struct typist {
    int master;
    const char *const *lines; /* ended by NULL */
    pthread_t thread;
};

static void *type_lines(void *arg)
{
    struct typist *t = arg;
    for (size_t i = 0; t->lines[i];) {
        struct pollfd pf = {.fd = t->master, .events = POLLIN | POLLPRI};
        uint8_t buf[512];
        if (poll(&pf, 1, 5000) != 1 || read(t->master, buf, sizeof(buf)) <= 0)
            return NULL; /* ward passwd then sees no line and fails the test */
        struct termios tio;
        if (buf[0] != TIOCPKT_DATA && tcgetattr(t->master, &tio) == 0 && !(tio.c_lflag & ECHO)) {
            ssize_t len = (ssize_t)strlen(t->lines[i]);
            if (write(t->master, t->lines[i], (size_t)len) != len)
                return NULL;
            i++;
        }
    }
    return NULL;
}

/* Standard input becomes a terminal on which lines will be typed. */
static void terminal_begin(struct typist *t, const char *const *lines)
{
    t->master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    ASSERT(t->master >= 0);
    ASSERT(grantpt(t->master) == 0 && unlockpt(t->master) == 0);
    ASSERT(freopen(ptsname(t->master), "r", stdin));
    ASSERT(isatty(STDIN_FILENO));
    struct termios tio;
    ASSERT_EQ(tcgetattr(STDIN_FILENO, &tio), 0);
    tio.c_lflag |= EXTPROC; /* settings changes are told to the master */
    ASSERT_EQ(tcsetattr(STDIN_FILENO, TCSANOW, &tio), 0);
    int on = 1;
    ASSERT_EQ(ioctl(t->master, TIOCPKT, &on), 0);
    t->lines = lines;
    ASSERT_EQ(pthread_create(&t->thread, NULL, type_lines, t), 0);
}

static void terminal_end(struct typist *t)
{
    pthread_join(t->thread, NULL);
    feed_stdin(""); /* stdin leaves the terminal before it goes */
    close(t->master);
}

TEST(terminal_asks_twice)
{
    const char *f = scratch_path("tty.passwd");
    struct typist t;
    static const char *const same[] = {"typed pw\n", "typed pw\n", NULL};
    terminal_begin(&t, same);
    int rc = PASSWD(f, "tia");
    terminal_end(&t);
    char want[400];
    snprintf(want, sizeof(want), "Password: \nPassword again: \n%s: user 'tia' set\n", f);
    ASSERT_EQ(rc, 0);
    ASSERT_STR_EQ(err_text, want);
    ASSERT_EQ(verify(f, "tia", "typed pw"), PASSWD_OK);

    /* Two different passwords: nothing changes. */
    char *before = slurp(f);
    static const char *const differ[] = {"new pw\n", "new pv\n", NULL};
    terminal_begin(&t, differ);
    rc = PASSWD(f, "tia");
    terminal_end(&t);
    ASSERT_EQ(rc, 1);
    ASSERT_STR_EQ(err_text, "Password: \nPassword again: \n"
                            "ward passwd: the passwords differ; nothing changed\n");
    char *after = slurp(f);
    ASSERT_STR_EQ(after, before);
    free(before);
    free(after);

    /* --bcrypt asks twice too; the hash goes to stdout all the same. */
    terminal_begin(&t, (const char *const[]){"nats\n", "nats\n", NULL});
    rc = PASSWD("--bcrypt", "--cost", "4");
    terminal_end(&t);
    ASSERT_EQ(rc, 0);
    ASSERT_STR_EQ(err_text, "Password: \nPassword again: \n");
    out_text[strcspn(out_text, "\n")] = '\0';
    ASSERT(auth_bcrypt_verify(out_text, "nats"));
}

TEST(help)
{
    ASSERT_EQ(PASSWD("--help"), 0);
    ASSERT(strncmp(out_text, "usage: ward passwd [-D] FILE USER\n", 34) == 0);
    ASSERT(strstr(out_text, "ward passwd --bcrypt [--cost N]\n"));
    ASSERT(strstr(out_text, "auth { password = {include \"FILE\"} }"));
    ASSERT_STR_EQ(err_text, "");
}

int main(void)
{
    char dir[] = "/tmp/ward-unit-passwd-XXXXXX";
    scratch_open(dir);
    RUN(creates_the_file_with_a_hash_the_broker_reads);
    RUN(changes_and_adds_users);
    RUN(deletes_a_user);
    RUN(bad_input_is_refused);
    RUN(a_file_it_cannot_read_or_write);
    RUN(bcrypt_hash_on_stdout);
    RUN(terminal_asks_twice);
    RUN(converts_a_plaintext_file);
    RUN(command_line_refusals);
    RUN(help);
    free(out_text);
    free(err_text);
    SCRATCH_DONE();
}
