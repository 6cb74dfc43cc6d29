/* The NATS client protocol, sans I/O: bytes in, views out, and back.
 *
 * Nothing here touches a socket, allocates or keeps state between calls:
 * nats_parse takes the bytes a connection has buffered and answers with one
 * command (views into those bytes), "need more", or an error whose text and
 * consequence are the ones nats-server 2.9 gives a client. The facts (texts,
 * limits, subject rules, the MQTT mapping) follow nats-server 2.9; see
 * docs/nats.md. */
#ifndef WARD_NATS_NATS_H
#define WARD_NATS_NATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/result.h"

/* A view into someone else's bytes; not NUL-terminated. */
struct nats_str {
    const uint8_t *p;
    size_t len;
};

enum nats_op {
    NATS_OP_CONNECT,
    NATS_OP_PUB,
    NATS_OP_HPUB,
    NATS_OP_SUB,
    NATS_OP_UNSUB,
    NATS_OP_PING,
    NATS_OP_PONG,
    NATS_OP_INFO,
    NATS_OP_MSG,
    NATS_OP_HMSG,
    NATS_OP_OK,
    NATS_OP_ERR
};

struct nats_cmd {
    enum nats_op op;
    struct nats_str subject, reply, queue, sid; /* PUB/HPUB: subject, reply; SUB: subject, queue,
                                                   sid; UNSUB: sid; MSG/HMSG: subject, sid, reply */
    bool has_max;            /* UNSUB <sid> <max> with max > 0: unsubscribe after max_msgs; */
    uint64_t max_msgs;       /* false (no max, 0, or not a number): unsubscribe now, as
                                nats-server does */
    struct nats_str headers; /* HPUB/HMSG: the whole header block, "NATS/1.0..."
                                up to and including its final \r\n\r\n: the first hdr_size bytes,
                                NOT checked (nats-server forwards them as they are);
                                nats_hdr_valid checks them */
    struct nats_str payload; /* PUB/HPUB/MSG/HMSG: the payload after the headers */
    struct nats_str arg;     /* CONNECT/INFO: the JSON text (maybe empty); -ERR: its text
                                without the single quotes */
};

/* Defaults as nats-server's: */
#define NATS_DEFAULT_MAX_CONTROL_LINE 4096u
#define NATS_DEFAULT_MAX_PAYLOAD      (1u << 20)

struct nats_limits {
    uint32_t max_control_line; /* 4096; 0 means the default */
    uint32_t max_payload;      /* 1 MiB; 0 means the default */
};

/* Errors, each with nats-server's exact -ERR text (nats_err_text) and whether
 * nats-server closes the connection after sending it (nats_err_closes). */
enum nats_err {
    NATS_ERR_NONE,
    NATS_ERR_UNKNOWN_OP,   /* 'Unknown Protocol Operation', closes */
    NATS_ERR_CONTROL_LINE, /* 'maximum control line exceeded', closes */
    NATS_ERR_MAX_PAYLOAD,  /* 'Maximum Payload Violation', closes */
    NATS_ERR_PARSER, /* bad arguments ("PUB a 1x", "SUB a", HPUB header size > total): nats-server
                        closes without a word (it only logs "processPub Parse Error") */
    NATS_ERR_INVALID_SUBJECT,   /* 'Invalid Subject' (SUB), stays open */
    NATS_ERR_AUTH_VIOLATION,    /* 'Authorization Violation', closes */
    NATS_ERR_AUTH_TIMEOUT,      /* 'Authentication Timeout', closes */
    NATS_ERR_STALE,             /* 'Stale Connection', closes */
    NATS_ERR_SLOW_CONSUMER,     /* nats-server sends nothing, it only closes; text for our logs */
    NATS_ERR_MAX_CONNECTIONS,   /* 'maximum connections exceeded', closes */
    NATS_ERR_MAX_SUBSCRIPTIONS, /* 'maximum subscriptions exceeded', stays open */
    NATS_ERR_SECURE_REQUIRED,   /* 'Secure Connection - TLS Required', closes */
    NATS_ERR_NO_HEADERS,        /* HPUB without headers:true in CONNECT: closes without a word. The
                                   parser does not know CONNECT: the broker applies it to an HPUB */
    NATS_ERR_INVALID_PUB_SUBJECT,         /* 'Invalid Publish Subject' (PUB/HPUB), stays open */
    NATS_ERR_BAD_PROTOCOL,                /* 'invalid client protocol' (CONNECT protocol), closes */
    NATS_ERR_NO_RESPONDERS_NEEDS_HEADERS, /* 'no responders requires headers support', closes */
    NATS_ERR_AUTH_EXPIRED,                /* 'User Authentication Expired', closes */
    NATS_ERR_ACCOUNT_AUTH_EXPIRED,        /* 'Account Authentication Expired', closes */
    NATS_ERR_MAX_ACCOUNT_CONNECTIONS, /* 'maximum account active connections exceeded', closes */
    NATS_ERR_THROTTLED, /* 'Connection throttling is active. Please try again later.', closes */
    NATS_ERR_ACCOUNT_REGISTRATION, /* 'Failed Account Registration', stays open */
    NATS_ERR_PERMISSION,           /* Permissions Violation ..., stays open: the line comes from
                                      nats_err_perm / nats_err_perm_reply */
    NATS_ERR_COUNT
};
/* "Unknown Protocol Operation", ... without quotes; "" for NATS_ERR_NONE and
 * NATS_ERR_PERMISSION (whose text carries the subject: nats_err_perm). */
const char *nats_err_text(enum nats_err e);
/* nats-server closes the connection after it. */
bool nats_err_closes(enum nats_err e);
/* nats-server sends "-ERR '<text>'" for it (false: it closes silently). */
bool nats_err_sent(enum nats_err e);

/* Parses ONE command at the start of buf[0..len). Server side (client->server ops: CONNECT PUB HPUB
 * SUB UNSUB PING PONG, plus +OK/-ERR/INFO/MSG/HMSG only when server_side is false, for our tests
 * and a future client). Operation names are case-insensitive; arguments split on runs of
 * spaces/tabs; a trailing space is fine (`UNSUB 1 `). Returns 1 and sets *used (bytes consumed,
 * including the payload's trailing \r\n) with cmd's views pointing into buf; 0 when more bytes are
 * needed (nothing consumed; but a control line already longer than max_control_line without its
 * \r\n is an error at once, so a peer cannot make us buffer an endless line); -1 on error with *err
 * set. A payload larger than max_payload is NATS_ERR_MAX_PAYLOAD as soon as the control line is
 * read. Bare \n line endings: accept what nats-server accepts.
 *
 * As nats-server 2.9 (each case is in tests/unit/nats/test_proto.c):
 * - max_control_line bounds the argument (after the name and its blanks, without \r\n); blanks
 *   before it and whatever follows PING/PONG/+OK are held to the same bound (nats-server does not
 *   buffer those; we would have to);
 * - "PINGX\r\n" and "PING foo\r\n" are a PING; "CONNECT{}" needs no blank; "PUB\r\n",
 *   "\r\n", " PING" and an unknown name are NATS_ERR_UNKNOWN_OP, decided as soon as the name
 *   cannot match (no newline needed);
 * - sizes are 1 to 9 decimal digits ("-1", "1x", "+1", ten digits: NATS_ERR_PARSER); SUB and
 *   UNSUB also split on a stray \r;
 * - a payload not followed by exactly "\r\n" is NATS_ERR_UNKNOWN_OP.
 * Differences (found by sending random command streams to nats-server 2.9.10): on the server side
 * INFO and +OK are NATS_ERR_UNKNOWN_OP (nats-server ignores them) and so is -ERR (nats-server
 * closes silently); a newline straight after the blanks ("UNSUB \n") ends the line here
 * (NATS_ERR_PARSER) while nats-server reads on into the next line for the arguments.
 *
 * Subjects, queues and sids are NOT validated here (nats-server answers an invalid subject without
 * closing): check them with nats_subject_valid / nats_queue_valid. lim NULL: the defaults. */
WARD_WUR int nats_parse(const struct nats_limits *lim, bool server_side, const uint8_t *buf,
                        size_t len, struct nats_cmd *cmd, size_t *used, enum nats_err *err);

/* CONNECT's JSON: a small bounded JSON object parser (strings with escapes decoded, \u incl.
 * surrogates, numbers, true/false/null, nested objects/arrays skipped safely with a depth bound).
 * Read as nats-server's Go decoder reads it: keys case-insensitive, the last duplicate wins, null
 * leaves a field unchanged, unknown fields skipped, a wrong type is an error (nats-server closes),
 * invalid UTF-8 and lone surrogates become U+FFFD. Stricter: \u0000 in a string, nesting deeper
 * than 32 and anything after the object are errors. */
struct nats_connect {
    bool verbose, pedantic /* both default true, as nats-server's */, tls_required,
        echo /* default true */, headers, no_responders;
    int protocol; /* default 0 */
    char name[256], lang[64], version[64], user[256], pass[1024], auth_token[1024], nkey[128],
        sig[256], jwt[4096];
    bool has_user, has_pass, has_token, has_nkey, has_sig, has_jwt; /* present as a string, even
                                                                      "" (NUL-terminated) */
};
/* 0, or -1 with a short reason in err (a too-long field is an error, not truncated). */
WARD_WUR int nats_connect_parse(const uint8_t *json, size_t len, struct nats_connect *out,
                                char *err, size_t errlen);

struct nats_info {
    const char *server_id, *server_name, *version, *host;
    uint16_t port;
    bool headers, auth_required, tls_required, tls_verify, tls_available;
    uint64_t max_payload;
    int proto;
    uint64_t client_id;
    const char *client_ip;
    const char *nonce; /* NULL: none */
    const char *const *connect_urls;
    size_t nconnect_urls;
    bool ldm; /* lame duck mode: the server is going away (nats-server's "ldm") */
};
/* "INFO {...} \r\n" in nats-server's field order and spacing (its "go" and "git_commit" left out;
 * auth_required, tls_*, client_id, client_ip, nonce, connect_urls and ldm only when set, as its
 * omitempty), strings escaped as Go's encoder does (<, >, & too). NULL strings are "". Returns the
 * length (buf is NUL-terminated), or 0 if cap is too small. */
WARD_WUR size_t nats_info_encode(const struct nats_info *i, char *buf, size_t cap);

/* The head of a MSG or HMSG: "MSG <subject> <sid> [reply] <size>\r\n" or
 * "HMSG <subject> <sid> [reply] <hdr_size> <total_size>\r\n" (hmsg when hdr_len > 0). The caller
 * then writes headers, payload and "\r\n". The names are copied as they are (the broker checked
 * them). Returns the length (buf is NUL-terminated), or 0 if cap is too small. */
WARD_WUR size_t nats_msg_head(char *buf, size_t cap, const char *subject, size_t subject_len,
                              const char *sid, size_t sid_len, const char *reply, size_t reply_len,
                              size_t hdr_len, size_t payload_len);
/* "-ERR 'text'\r\n" as nats-server writes it (single quotes, the text as is). A text holding \r or
 * \n is refused (0). Returns the length (buf is NUL-terminated), or 0 if cap is too small. */
WARD_WUR size_t nats_err_encode(char *buf, size_t cap, const char *text);
/* The whole line for a permission error, with nats-server's exact text:
 *   -ERR 'Permissions Violation for Publish to "x"'
 *   -ERR 'Permissions Violation for Subscription to "x"'
 *   -ERR 'Permissions Violation for Subscription to "x" using queue "q"'
 * the subject and queue quoted as Go's %q does (backslash escapes, \xNN for bytes that are not
 * printable UTF-8) so a peer cannot inject a line break or a quote. queue: NULL for none (only for
 * subscribe). Returns the length (buf is NUL-terminated), or 0 if cap is too small. */
WARD_WUR size_t nats_err_perm(char *buf, size_t cap, bool publish, const uint8_t *subject,
                              size_t len, const uint8_t *queue, size_t qlen);
/* -ERR 'Permissions Violation for Publish with Reply of "r"' (a reply subject the client may not
 * use), quoted as above. */
WARD_WUR size_t nats_err_perm_reply(char *buf, size_t cap, const uint8_t *reply, size_t len);

/* Headers. A header block: "NATS/1.0[ <code>[ <description>]]\r\n" then "Name: value\r\n"...
 * "\r\n". */
bool nats_hdr_valid(const uint8_t *h, size_t len); /* well-formed block */
int nats_hdr_status(const uint8_t *h, size_t len); /* status code on the first line, 0 none */
struct nats_hdr_iter {
    const uint8_t *p, *end;
};
void nats_hdr_iter_init(struct nats_hdr_iter *it, const uint8_t *h, size_t len);
/* Next "Name: value" (value trimmed of leading/trailing spaces); false at the end. */
bool nats_hdr_next(struct nats_hdr_iter *it, struct nats_str *name, struct nats_str *value);
/* Whether nats_hdr_build takes this pair (a name without ':', blanks or
 * control characters; a value without CR or LF). */
bool nats_hdr_pair_ok(const uint8_t *name, size_t nlen, const uint8_t *value, size_t vlen);
/* Builds a block from pairs into buf: begins with "NATS/1.0\r\n" (or "NATS/1.0 <code> <desc>\r\n"
 * when code != 0), appends pairs, ends with "\r\n". Names/values containing \r, \n or (names) ':'
 * or spaces are refused (return 0). Returns the block length or 0 if it does not fit. */
WARD_WUR size_t nats_hdr_build(uint8_t *buf, size_t cap, int code, const char *desc,
                               const struct nats_str *names, const struct nats_str *values,
                               size_t n);

/* Subjects, nats-server's rules: tokens split by '.', no empty tokens, no whitespace/control chars,
 * '*' and '>' only as whole tokens, '>' only last; wildcards only when filter is true. Inside a
 * longer token ("a*", "b>") they are plain characters, as in nats-server. Stricter than
 * nats-server: every control character and DEL are refused, not only \t \n \f \r and space. */
bool nats_subject_valid(const uint8_t *s, size_t len, bool filter);
/* A queue group name: not empty, no whitespace or control characters (nats-server checks
 * nothing more: "q.*" is a fine queue name). */
bool nats_queue_valid(const uint8_t *s, size_t len);
/* NATS matching (filter with * and >; '>' needs at least one more token). Both are taken as
 * valid (nats_subject_valid); empty ones never match. */
bool nats_subject_match(const uint8_t *filter, size_t flen, const uint8_t *subj, size_t slen);

/* One message space with MQTT, by nats-server's own documented mapping (server/mqtt.go:
 * '/' <-> '.', '+' <-> '*', '#' <-> '>', '.' in an MQTT topic is "//" in NATS, empty MQTT levels
 * and a leading or trailing '/' become "/" tokens). Both return the output length, or -1 if the
 * input cannot be mapped or does not fit cap. filter: wildcards allowed. A NATS filter "a.>" maps
 * to MQTT "a/#"; note that MQTT's "a/#" also matches "a" while NATS "a.>" does not: the broker
 * post-checks with nats_subject_match.
 * Strict, so that the mapping is one to one (docs/nats.md, "Subject mapping", has the table the
 * unit test checks): an MQTT level that is exactly "*" or ">" is refused (nats-server would make it
 * a wildcard), and so is a NATS token with a lone '/' or with '+' or '#' (nats-server maps them
 * lossily), the NATS subject "/" (the empty MQTT topic), whitespace, control characters and
 * invalid UTF-8. Whatever maps, maps back to the same bytes. The output is not NUL-terminated. */
WARD_WUR int nats_to_mqtt(const uint8_t *subj, size_t len, bool filter, char *out, size_t cap);
WARD_WUR int mqtt_to_nats(const uint8_t *topic, size_t len, bool filter, char *out, size_t cap);

#endif
