/* The NATS client protocol's framing: one command per call, as nats-server
 * 2.9's parser (server/parser.go) frames it, and the server's own lines
 * (MSG/HMSG heads, -ERR). Facts checked against a running nats-server 2.9.10;
 * tests/unit/nats/test_proto.c holds what it answered. */
#include <stdio.h>
#include <string.h>

#include "nats/nats.h"

/* How the rest of the line after an operation's name is read. */
enum op_kind {
    KIND_ARGS, /* a space or tab must follow the name: "PUB a 1" */
    KIND_JSON, /* the argument may follow at once: "CONNECT{}" is fine */
    KIND_NONE, /* nothing is read up to the newline: "PINGX" is a PING */
};

struct op_def {
    const char *name;
    uint8_t len;
    enum nats_op op;
    enum op_kind kind;
    bool client_only; /* sent by servers: refused when parsing the server side */
};

/* No name is a prefix of another, so the first that matches is the one. */
static const struct op_def ops[] = {
    {"PUB", 3, NATS_OP_PUB, KIND_ARGS, false},
    {"HPUB", 4, NATS_OP_HPUB, KIND_ARGS, false},
    {"SUB", 3, NATS_OP_SUB, KIND_ARGS, false},
    {"UNSUB", 5, NATS_OP_UNSUB, KIND_ARGS, false},
    {"PING", 4, NATS_OP_PING, KIND_NONE, false},
    {"PONG", 4, NATS_OP_PONG, KIND_NONE, false},
    {"CONNECT", 7, NATS_OP_CONNECT, KIND_JSON, false},
    {"INFO", 4, NATS_OP_INFO, KIND_JSON, true},
    {"MSG", 3, NATS_OP_MSG, KIND_ARGS, true},
    {"HMSG", 4, NATS_OP_HMSG, KIND_ARGS, true},
    {"+OK", 3, NATS_OP_OK, KIND_NONE, true},
    {"-ERR", 4, NATS_OP_ERR, KIND_ARGS, true},
};

struct err_def {
    const char *text;
    bool closes, sent;
};

/* The texts are nats-server's (server/client.go, server.go, parser.go,
 * errors.go); "closes" and "sent" are what a 2.9.10 server did when we
 * provoked each one. */
static const struct err_def errs[NATS_ERR_COUNT] = {
    [NATS_ERR_NONE] = {"", false, false},
    [NATS_ERR_UNKNOWN_OP] = {"Unknown Protocol Operation", true, true},
    [NATS_ERR_CONTROL_LINE] = {"maximum control line exceeded", true, true},
    [NATS_ERR_MAX_PAYLOAD] = {"Maximum Payload Violation", true, true},
    /* nats-server logs its parse errors ("processPub Parse Error: ...") and
     * closes without a word to the client. */
    [NATS_ERR_PARSER] = {"Parser Error", true, false},
    [NATS_ERR_INVALID_SUBJECT] = {"Invalid Subject", false, true},
    [NATS_ERR_AUTH_VIOLATION] = {"Authorization Violation", true, true},
    [NATS_ERR_AUTH_TIMEOUT] = {"Authentication Timeout", true, true},
    [NATS_ERR_STALE] = {"Stale Connection", true, true},
    /* Only logged by nats-server ("Slow Consumer Detected"), then closed. */
    [NATS_ERR_SLOW_CONSUMER] = {"Slow Consumer", true, false},
    [NATS_ERR_MAX_CONNECTIONS] = {"maximum connections exceeded", true, true},
    [NATS_ERR_MAX_SUBSCRIPTIONS] = {"maximum subscriptions exceeded", false, true},
    [NATS_ERR_SECURE_REQUIRED] = {"Secure Connection - TLS Required", true, true},
    /* ErrMsgHeadersNotSupported: closed without a word. */
    [NATS_ERR_NO_HEADERS] = {"message headers not supported", true, false},
    [NATS_ERR_INVALID_PUB_SUBJECT] = {"Invalid Publish Subject", false, true},
    [NATS_ERR_BAD_PROTOCOL] = {"invalid client protocol", true, true},
    [NATS_ERR_NO_RESPONDERS_NEEDS_HEADERS] = {"no responders requires headers support", true, true},
    [NATS_ERR_AUTH_EXPIRED] = {"User Authentication Expired", true, true},
    [NATS_ERR_ACCOUNT_AUTH_EXPIRED] = {"Account Authentication Expired", true, true},
    [NATS_ERR_MAX_ACCOUNT_CONNECTIONS] = {"maximum account active connections exceeded", true,
                                          true},
    [NATS_ERR_THROTTLED] = {"Connection throttling is active. Please try again later.", true, true},
    [NATS_ERR_ACCOUNT_REGISTRATION] = {"Failed Account Registration", false, true},
    [NATS_ERR_PERMISSION] = {"", false, true},
};

/* see nats.h */
const char *nats_err_text(enum nats_err e)
{
    return (unsigned)e < NATS_ERR_COUNT ? errs[e].text : "";
}

/* see nats.h */
bool nats_err_closes(enum nats_err e)
{
    return (unsigned)e < NATS_ERR_COUNT && errs[e].closes;
}

/* see nats.h */
bool nats_err_sent(enum nats_err e)
{
    return (unsigned)e < NATS_ERR_COUNT && errs[e].sent;
}

static bool is_blank(uint8_t c)
{
    return c == ' ' || c == '\t';
}

static uint8_t upper(uint8_t c)
{
    return c >= 'a' && c <= 'z' ? (uint8_t)(c - 'a' + 'A') : c;
}

/* 1: *def is the operation at buf; 0: buf ends inside a name that may still
 * match; -1: no operation starts this way. */
static int match_op(bool server_side, const uint8_t *buf, size_t len, const struct op_def **def)
{
    bool partial = false;
    for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++) {
        if (server_side && ops[k].client_only)
            continue;
        size_t n = len < ops[k].len ? len : ops[k].len, i = 0;
        while (i < n && upper(buf[i]) == (uint8_t)ops[k].name[i])
            i++;
        if (i < n)
            continue;
        if (n == ops[k].len) {
            *def = &ops[k];
            return 1;
        }
        partial = true;
    }
    return partial ? 0 : -1;
}

/* nats-server's parseSize: 1 to 9 decimal digits, nothing else (so a size
 * never overflows, and "-1", "1x" or ten digits are refused). */
static bool parse_size(struct nats_str s, uint64_t *out)
{
    if (s.len == 0 || s.len > 9)
        return false;
    uint64_t n = 0;
    for (size_t i = 0; i < s.len; i++) {
        if (s.p[i] < '0' || s.p[i] > '9')
            return false;
        n = n * 10 + (uint64_t)(s.p[i] - '0');
    }
    *out = n;
    return true;
}

/* The arrays split_args fills are zeroed first by their callers: without
 * that, clang 14 at -O2 (its MemCpyOpt pass) lost SUB's sid. */
#define MAX_ARGS 5

/* Splits on runs of blanks (and, for SUB/UNSUB as nats-server's splitArg,
 * carriage returns). Returns the count, MAX_ARGS + 1 when there are more. */
static size_t split_args(const uint8_t *p, size_t n, bool cr_splits, struct nats_str *out)
{
    size_t count = 0, i = 0;
    for (;;) {
        while (i < n && (is_blank(p[i]) || (cr_splits && p[i] == '\r')))
            i++;
        if (i == n)
            return count;
        size_t start = i;
        while (i < n && !is_blank(p[i]) && !(cr_splits && p[i] == '\r'))
            i++;
        if (count == MAX_ARGS)
            return MAX_ARGS + 1;
        out[count++] = (struct nats_str){p + start, i - start};
    }
}

/* A command's arguments, read from its control line. *payload is the size of
 * what follows the line (0 for commands without one). */
struct line {
    struct nats_str arg;
    uint64_t size, hdr;
};

static enum nats_err args_pub(struct nats_cmd *cmd, struct line *l)
{
    struct nats_str a[MAX_ARGS] = {{0}};
    size_t n = split_args(l->arg.p, l->arg.len, false, a);
    bool hdrs = cmd->op == NATS_OP_HPUB;
    size_t want = hdrs ? 3 : 2;
    if (n != want && n != want + 1)
        return NATS_ERR_PARSER;
    cmd->subject = a[0];
    if (n == want + 1)
        cmd->reply = a[1];
    if (!parse_size(a[n - 1], &l->size))
        return NATS_ERR_PARSER;
    if (hdrs && (!parse_size(a[n - 2], &l->hdr) || l->hdr > l->size))
        return NATS_ERR_PARSER;
    return NATS_ERR_NONE;
}

/* MSG <subject> <sid> [reply] <size>, HMSG <subject> <sid> [reply] <hdr> <total> */
static enum nats_err args_msg(struct nats_cmd *cmd, struct line *l)
{
    struct nats_str a[MAX_ARGS] = {{0}};
    size_t n = split_args(l->arg.p, l->arg.len, false, a);
    bool hdrs = cmd->op == NATS_OP_HMSG;
    size_t want = hdrs ? 4 : 3;
    if (n != want && n != want + 1)
        return NATS_ERR_PARSER;
    cmd->subject = a[0];
    cmd->sid = a[1];
    if (n == want + 1)
        cmd->reply = a[2];
    if (!parse_size(a[n - 1], &l->size))
        return NATS_ERR_PARSER;
    if (hdrs && (!parse_size(a[n - 2], &l->hdr) || l->hdr > l->size))
        return NATS_ERR_PARSER;
    return NATS_ERR_NONE;
}

static enum nats_err args_sub(struct nats_cmd *cmd, struct line *l)
{
    struct nats_str a[MAX_ARGS] = {{0}};
    size_t n = split_args(l->arg.p, l->arg.len, true, a);
    if (n != 2 && n != 3)
        return NATS_ERR_PARSER;
    cmd->subject = a[0];
    if (n == 3)
        cmd->queue = a[1];
    cmd->sid = a[n - 1];
    return NATS_ERR_NONE;
}

static enum nats_err args_unsub(struct nats_cmd *cmd, struct line *l)
{
    struct nats_str a[MAX_ARGS] = {{0}};
    size_t n = split_args(l->arg.p, l->arg.len, true, a);
    if (n != 1 && n != 2)
        return NATS_ERR_PARSER;
    cmd->sid = a[0];
    /* nats-server unsubscribes at once when the maximum is absent, 0 or not
     * a size at all ("UNSUB 1 x"); only a positive one defers it. */
    if (n == 2 && parse_size(a[1], &cmd->max_msgs) && cmd->max_msgs > 0)
        cmd->has_max = true;
    else
        cmd->max_msgs = 0;
    return NATS_ERR_NONE;
}

static enum nats_err args_err(struct nats_cmd *cmd, struct line *l)
{
    struct nats_str t = l->arg;
    while (t.len > 0 && is_blank(t.p[t.len - 1]))
        t.len--;
    if (t.len >= 2 && t.p[0] == '\'' && t.p[t.len - 1] == '\'')
        t = (struct nats_str){t.p + 1, t.len - 2};
    cmd->arg = t;
    return NATS_ERR_NONE;
}

static enum nats_err read_args(struct nats_cmd *cmd, struct line *l)
{
    switch (cmd->op) {
    case NATS_OP_PUB:
    case NATS_OP_HPUB:
        return args_pub(cmd, l);
    case NATS_OP_MSG:
    case NATS_OP_HMSG:
        return args_msg(cmd, l);
    case NATS_OP_SUB:
        return args_sub(cmd, l);
    case NATS_OP_UNSUB:
        return args_unsub(cmd, l);
    case NATS_OP_ERR:
        return args_err(cmd, l);
    case NATS_OP_CONNECT:
    case NATS_OP_INFO:
        cmd->arg = l->arg;
        return NATS_ERR_NONE;
    default:
        return NATS_ERR_NONE;
    }
}

/* The length of a (partial) line as nats-server measures it against
 * max_control_line: a carriage return at its end does not count. */
static size_t measured(const uint8_t *p, size_t n)
{
    return n > 0 && p[n - 1] == '\r' ? n - 1 : n;
}

/* Finds the control line after the operation's name at buf[pos]. 1: l->arg
 * is the argument and *next the byte after the newline; 0: need more; -1. */
static int read_line(const struct op_def *def, uint32_t mcl, const uint8_t *buf, size_t len,
                     size_t pos, struct line *l, size_t *next, enum nats_err *err)
{
    if (def->kind == KIND_ARGS) {
        if (pos == len)
            return 0;
        if (!is_blank(buf[pos])) {
            *err = NATS_ERR_UNKNOWN_OP; /* "PUB\r\n", "PUBX" */
            return -1;
        }
    }
    /* Blanks before the argument and anything after PING are not buffered
     * by nats-server; we must buffer them, so they are held to the same
     * bound as an argument. */
    size_t ws = pos;
    if (def->kind != KIND_NONE)
        while (pos < len && is_blank(buf[pos]))
            pos++;
    const uint8_t *nl = pos < len ? memchr(buf + pos, '\n', len - pos) : NULL;
    size_t end = nl ? (size_t)(nl - buf) : len;
    if (pos - ws > mcl || measured(buf + pos, end - pos) > mcl) {
        *err = NATS_ERR_CONTROL_LINE;
        return -1;
    }
    if (!nl)
        return 0;
    l->arg = (struct nats_str){buf + pos, measured(buf + pos, end - pos)};
    *next = end + 1;
    return 1;
}

/* A payload of l->size bytes, then exactly "\r\n" (a bare "\n" is refused
 * here, unlike after a control line). */
static int read_payload(struct nats_cmd *cmd, const struct line *l, const uint8_t *buf, size_t len,
                        size_t *pos, enum nats_err *err)
{
    size_t at = *pos, avail = len - at;
    if (avail > l->size && buf[at + l->size] != '\r')
        goto bad;
    if (avail > l->size + 1 && buf[at + l->size + 1] != '\n')
        goto bad;
    if (avail < l->size + 2)
        return 0;
    cmd->headers = (struct nats_str){buf + at, (size_t)l->hdr};
    cmd->payload = (struct nats_str){buf + at + l->hdr, (size_t)(l->size - l->hdr)};
    *pos = at + l->size + 2;
    return 1;
bad:
    *err = NATS_ERR_UNKNOWN_OP; /* as nats-server: its parser has no other word for it */
    return -1;
}

static bool has_payload(enum nats_op op)
{
    return op == NATS_OP_PUB || op == NATS_OP_HPUB || op == NATS_OP_MSG || op == NATS_OP_HMSG;
}

static int fail(enum nats_err *err, enum nats_err e)
{
    *err = e;
    return -1;
}

/* see nats.h */
int nats_parse(const struct nats_limits *lim, bool server_side, const uint8_t *buf, size_t len,
               struct nats_cmd *cmd, size_t *used, enum nats_err *err)
{
    uint32_t mcl =
        lim && lim->max_control_line ? lim->max_control_line : NATS_DEFAULT_MAX_CONTROL_LINE;
    uint32_t mp = lim && lim->max_payload ? lim->max_payload : NATS_DEFAULT_MAX_PAYLOAD;
    const struct op_def *def = NULL;
    struct line l = {0};
    size_t pos = 0;

    *used = 0;
    *err = NATS_ERR_NONE;
    *cmd = (struct nats_cmd){0};
    int rc = match_op(server_side, buf, len, &def);
    if (rc < 0)
        return fail(err, NATS_ERR_UNKNOWN_OP);
    if (rc == 0)
        return 0;
    cmd->op = def->op;
    rc = read_line(def, mcl, buf, len, def->len, &l, &pos, err);
    if (rc <= 0)
        return rc;
    enum nats_err e = read_args(cmd, &l);
    if (e != NATS_ERR_NONE)
        return fail(err, e);
    if (has_payload(cmd->op)) {
        /* Refused before a byte of it is read, as nats-server does. */
        if (l.size > mp)
            return fail(err, NATS_ERR_MAX_PAYLOAD);
        rc = read_payload(cmd, &l, buf, len, &pos, err);
        if (rc <= 0)
            return rc;
    }
    *used = pos;
    return 1;
}

/* see nats.h */
size_t nats_err_encode(char *buf, size_t cap, const char *text)
{
    /* A line break in the text would end the line early and start another
     * one that the client would read as a command. */
    if (strpbrk(text, "\r\n"))
        return 0;
    int n = snprintf(buf, cap, "-ERR '%s'\r\n", text);
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

struct out {
    char *p;
    size_t cap, len;
    bool full;
};

static void put(struct out *o, const char *s, size_t n)
{
    if (n == 0)
        return;
    if (o->full || n >= o->cap - o->len) {
        o->full = true;
        return;
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
}

static void puts_(struct out *o, const char *s)
{
    put(o, s, strlen(s));
}

/* see nats.h */
/* " <v>" in decimal; returns its length. */
static size_t decimal(char *out, size_t v)
{
    char tmp[24];
    size_t n = 0;
    do
        tmp[n++] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    out[0] = ' ';
    for (size_t i = 0; i < n; i++)
        out[1 + i] = tmp[n - 1 - i];
    return n + 1;
}

size_t nats_msg_head(char *buf, size_t cap, const char *subject, size_t subject_len,
                     const char *sid, size_t sid_len, const char *reply, size_t reply_len,
                     size_t hdr_len, size_t payload_len)
{
    /* Copied, not formatted: a sid is the client's bytes, NUL included.
     * Once per delivered message, so sized once and written straight. */
    size_t need = 5 + subject_len + 1 + sid_len + (reply_len ? 1 + reply_len : 0) + 2 * 21 + 3;
    if (cap < need)
        return 0;
    char *p = buf;
    if (hdr_len)
        memcpy(p, "HMSG ", 5), p += 5;
    else
        memcpy(p, "MSG ", 4), p += 4;
    memcpy(p, subject, subject_len), p += subject_len;
    *p++ = ' ';
    memcpy(p, sid, sid_len), p += sid_len;
    if (reply_len) {
        *p++ = ' ';
        memcpy(p, reply, reply_len), p += reply_len;
    }
    if (hdr_len)
        p += decimal(p, hdr_len);
    p += decimal(p, hdr_len + payload_len);
    memcpy(p, "\r\n", 3);
    return (size_t)(p + 2 - buf);
}

/* The length of the UTF-8 sequence at p (2 to 4), 0 when it is not one. */
static size_t utf8_seq(const uint8_t *p, size_t n)
{
    size_t len = p[0] >= 0xf0 && p[0] <= 0xf4 ? 4 : p[0] >= 0xe0 ? 3 : p[0] >= 0xc2 ? 2 : 0;
    if (len == 0 || len > n || p[0] >= 0xf8)
        return 0;
    for (size_t i = 1; i < len; i++)
        if ((p[i] & 0xc0) != 0x80)
            return 0;
    uint32_t cp = p[0] & (0x7f >> len);
    for (size_t i = 1; i < len; i++)
        cp = cp << 6 | (p[i] & 0x3f);
    static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

/* Go's %q, which nats-server uses for the subject: quotes, backslash
 * escapes, \xNN for other bytes that are not printable or not UTF-8. A peer's
 * subject therefore never puts a line break or a quote on our line. */
static void put_quoted(struct out *o, const uint8_t *s, size_t n)
{
    static const char named[] = "\a\b\f\n\r\t\v", letter[] = "abfnrtv";
    put(o, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        const char *e = s[i] ? strchr(named, s[i]) : NULL;
        size_t seq = s[i] >= 0x80 ? utf8_seq(s + i, n - i) : 0;
        char tmp[5];
        if (s[i] == '"' || s[i] == '\\') {
            tmp[0] = '\\', tmp[1] = (char)s[i];
            put(o, tmp, 2);
        } else if (e) {
            tmp[0] = '\\', tmp[1] = letter[e - named];
            put(o, tmp, 2);
        } else if (s[i] >= 0x20 && s[i] < 0x7f) {
            put(o, (const char *)s + i, 1);
        } else if (seq) {
            put(o, (const char *)s + i, seq);
            i += seq - 1;
        } else {
            snprintf(tmp, sizeof tmp, "\\x%02x", s[i]);
            put(o, tmp, 4);
        }
    }
    put(o, "\"", 1);
}

static size_t finish(struct out *o)
{
    put(o, "'\r\n", 3);
    if (o->full)
        return 0;
    o->p[o->len] = '\0';
    return o->len;
}

/* see nats.h */
size_t nats_err_perm(char *buf, size_t cap, bool publish, const uint8_t *subject, size_t len,
                     const uint8_t *queue, size_t qlen)
{
    struct out o = {buf, cap, 0, cap == 0};
    puts_(&o, publish ? "-ERR 'Permissions Violation for Publish to "
                      : "-ERR 'Permissions Violation for Subscription to ");
    put_quoted(&o, subject, len);
    if (!publish && queue) {
        puts_(&o, " using queue ");
        put_quoted(&o, queue, qlen);
    }
    return finish(&o);
}

/* see nats.h */
size_t nats_err_perm_reply(char *buf, size_t cap, const uint8_t *reply, size_t len)
{
    struct out o = {buf, cap, 0, cap == 0};
    puts_(&o, "-ERR 'Permissions Violation for Publish with Reply of ");
    put_quoted(&o, reply, len);
    return finish(&o);
}
