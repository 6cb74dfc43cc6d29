/* A nats.c (Debian's libnats 3.4) client for test_nats_clients.py: each
 * mode runs one scenario against the server at argv[1], checks what came
 * back and prints "ok MODE" (exit 0) or why it failed (exit 1). Built at
 * test time with `cc cclient.c -lnats`. */
#include <nats/nats.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WAIT_MS 5000

static void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("FAIL ");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    exit(1);
}

static void must(natsStatus s, const char *what)
{
    if (s != NATS_OK)
        fail("%s: %s (%s)", what, natsStatus_GetText(s), nats_GetLastError(NULL));
}

static natsConnection *conn(const char *url, const char *name)
{
    natsOptions *o = NULL;
    natsConnection *nc = NULL;
    must(natsOptions_Create(&o), "options");
    must(natsOptions_SetURL(o, url), "url");
    must(natsOptions_SetName(o, name), "name");
    must(natsOptions_SetTimeout(o, WAIT_MS), "timeout");
    must(natsConnection_Connect(&nc, o), "connect");
    natsOptions_Destroy(o);
    return nc;
}

static natsMsg *next(natsSubscription *sub, const char *what)
{
    natsMsg *m = NULL;
    must(natsSubscription_NextMsg(&m, sub, WAIT_MS), what);
    return m;
}

/* Plain messages in order, then one with headers (a repeated name keeps
 * both values) and a binary payload. */
static void pubsub(const char *url)
{
    natsConnection *sc = conn(url, "sub"), *pc = conn(url, "pub");
    natsSubscription *sub = NULL;
    char subj[64], data[64], bin[4000];
    if (natsConnection_HasHeaderSupport(pc) != NATS_OK)
        fail("server does not announce headers");
    must(natsConnection_SubscribeSync(&sub, sc, "cli.>"), "subscribe");
    must(natsConnection_Flush(sc), "flush");
    for (int i = 0; i < 100; i++) {
        snprintf(subj, sizeof subj, "cli.a.%d", i);
        snprintf(data, sizeof data, "m%d", i);
        must(natsConnection_PublishString(pc, subj, data), "publish");
    }
    for (size_t i = 0; i < sizeof bin; i++)
        bin[i] = (char)(i * 7);
    natsMsg *hm = NULL;
    must(natsMsg_Create(&hm, "cli.h", NULL, bin, (int)sizeof bin), "message");
    must(natsMsgHeader_Set(hm, "Proto-Type", "mir.v1.Telemetry"), "header");
    must(natsMsgHeader_Add(hm, "Multi", "one"), "header");
    must(natsMsgHeader_Add(hm, "Multi", "two"), "header");
    must(natsConnection_PublishMsg(pc, hm), "publish with headers");
    must(natsConnection_Flush(pc), "flush");
    for (int i = 0; i < 100; i++) {
        natsMsg *m = next(sub, "message");
        snprintf(subj, sizeof subj, "cli.a.%d", i);
        snprintf(data, sizeof data, "m%d", i);
        if (strcmp(natsMsg_GetSubject(m), subj) != 0 ||
            natsMsg_GetDataLength(m) != (int)strlen(data) ||
            memcmp(natsMsg_GetData(m), data, strlen(data)) != 0)
            fail("message %d: %s", i, natsMsg_GetSubject(m));
        natsMsg_Destroy(m);
    }
    natsMsg *m = next(sub, "header message");
    const char *v = NULL, **vals = NULL;
    int count = 0;
    must(natsMsgHeader_Get(m, "Proto-Type", &v), "header get");
    must(natsMsgHeader_Values(m, "Multi", &vals, &count), "header values");
    if (strcmp(v, "mir.v1.Telemetry") != 0 || count != 2 || strcmp(vals[0], "one") != 0 ||
        strcmp(vals[1], "two") != 0)
        fail("headers: %s, %d values", v, count);
    if (natsMsg_GetDataLength(m) != (int)sizeof bin ||
        memcmp(natsMsg_GetData(m), bin, sizeof bin) != 0)
        fail("binary payload changed");
    free((void *)vals);
    natsMsg_Destroy(m);
    natsMsg_Destroy(hm);
    natsSubscription_Destroy(sub);
    natsConnection_Destroy(sc);
    natsConnection_Destroy(pc);
}

/* Two groups of two members: each message once per group. */
static void queue(const char *url)
{
    enum { N = 60, M = 4 };
    natsConnection *nc[M];
    natsSubscription *sub[M];
    for (int i = 0; i < M; i++) {
        nc[i] = conn(url, "member");
        must(natsConnection_QueueSubscribeSync(&sub[i], nc[i], "work", i < 2 ? "g1" : "g2"),
             "queue subscribe");
        must(natsConnection_Flush(nc[i]), "flush");
    }
    natsConnection *pc = conn(url, "pub");
    char data[16];
    for (int i = 0; i < N; i++) {
        snprintf(data, sizeof data, "%d", i);
        must(natsConnection_PublishString(pc, "work", data), "publish");
    }
    must(natsConnection_Flush(pc), "flush");
    int seen[2][N] = {{0}};
    for (int i = 0; i < M; i++)
        must(natsConnection_Flush(nc[i]), "flush member");
    for (int g = 0; g < 2; g++) {
        int total = 0;
        for (int k = 0; k < 2 && total < N; k++) {
            natsSubscription *s = sub[g * 2 + k];
            uint64_t pending = 0;
            int msgs = 0;
            must(natsSubscription_GetPending(s, &msgs, NULL), "pending");
            pending = (uint64_t)msgs;
            if (pending == 0)
                fail("a member of group %d got nothing", g + 1);
            for (uint64_t j = 0; j < pending; j++) {
                natsMsg *m = next(s, "member message");
                seen[g][atoi(natsMsg_GetData(m))]++;
                natsMsg_Destroy(m);
                total++;
            }
        }
        for (int i = 0; i < N; i++)
            if (seen[g][i] != 1)
                fail("group %d got message %d %d times", g + 1, i, seen[g][i]);
    }
    for (int i = 0; i < M; i++) {
        natsSubscription_Destroy(sub[i]);
        natsConnection_Destroy(nc[i]);
    }
    natsConnection_Destroy(pc);
}

static void on_request(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *closure)
{
    (void)sub;
    (void)closure;
    natsMsg *r = NULL;
    const char *id = NULL;
    char data[64];
    snprintf(data, sizeof data, "re:%.*s", natsMsg_GetDataLength(m), natsMsg_GetData(m));
    if (natsMsg_Create(&r, natsMsg_GetReply(m), NULL, data, (int)strlen(data)) == NATS_OK) {
        if (natsMsgHeader_Get(m, "Req-Id", &id) == NATS_OK)
            natsMsgHeader_Set(r, "Reply-Of", id);
        natsConnection_PublishMsg(nc, r);
        natsMsg_Destroy(r);
    }
    natsMsg_Destroy(m);
}

/* Request/reply with nats.c's shared inbox, headers both ways, and a
 * request nobody answers (NATS_NO_RESPONDERS from the 503). */
static void request(const char *url)
{
    natsConnection *svc = conn(url, "svc"), *cli = conn(url, "cli");
    natsSubscription *sub = NULL;
    must(natsConnection_QueueSubscribe(&sub, svc, "svc.echo", "mods", on_request, NULL),
         "queue subscribe");
    must(natsConnection_Flush(svc), "flush");
    for (int i = 0; i < 20; i++) {
        char id[16], want[32];
        natsMsg *q = NULL, *r = NULL;
        const char *got = NULL;
        snprintf(id, sizeof id, "%d", i);
        snprintf(want, sizeof want, "re:%d", i);
        must(natsMsg_Create(&q, "svc.echo", NULL, id, (int)strlen(id)), "message");
        must(natsMsgHeader_Set(q, "Req-Id", id), "header");
        must(natsConnection_RequestMsg(&r, cli, q, WAIT_MS), "request");
        must(natsMsgHeader_Get(r, "Reply-Of", &got), "reply header");
        if (natsMsg_GetDataLength(r) != (int)strlen(want) ||
            memcmp(natsMsg_GetData(r), want, strlen(want)) != 0 || strcmp(got, id) != 0)
            fail("reply %d", i);
        natsMsg_Destroy(q);
        natsMsg_Destroy(r);
    }
    natsMsg *r = NULL;
    natsStatus s = natsConnection_RequestString(&r, cli, "nobody.home", "x", WAIT_MS);
    if (s != NATS_NO_RESPONDERS)
        fail("request to nobody: %s", natsStatus_GetText(s));
    natsSubscription_Destroy(sub);
    natsConnection_Destroy(svc);
    natsConnection_Destroy(cli);
}

/* Drain: what was sent before arrives, then the subscription ends. */
static void drain(const char *url)
{
    natsConnection *sc = conn(url, "sub"), *pc = conn(url, "pub");
    natsSubscription *sub = NULL;
    must(natsConnection_SubscribeSync(&sub, sc, "d"), "subscribe");
    must(natsConnection_Flush(sc), "flush");
    for (int i = 0; i < 50; i++)
        must(natsConnection_PublishString(pc, "d", "x"), "publish");
    must(natsConnection_Flush(pc), "flush");
    must(natsConnection_Flush(sc), "flush");
    must(natsSubscription_Drain(sub), "drain");
    for (int i = 0; i < 50; i++)
        natsMsg_Destroy(next(sub, "drained message"));
    must(natsSubscription_WaitForDrainCompletion(sub, WAIT_MS), "drain completion");
    must(natsSubscription_DrainCompletionStatus(sub), "drain status");
    must(natsConnection_PublishString(pc, "d", "late"), "publish");
    must(natsConnection_Flush(pc), "flush");
    must(natsConnection_Flush(sc), "flush after drain");
    natsSubscription_Destroy(sub);
    must(natsConnection_Drain(sc), "connection drain");
    natsConnection_Destroy(sc);
    natsConnection_Destroy(pc);
}

int main(int argc, char **argv)
{
    if (argc != 3)
        fail("usage: cclient URL MODE");
    static const struct {
        const char *name;
        void (*fn)(const char *url);
    } modes[] = {{"pubsub", pubsub}, {"queue", queue}, {"request", request}, {"drain", drain}};
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        if (strcmp(argv[2], modes[i].name) == 0) {
            modes[i].fn(argv[1]);
            printf("ok %s\n", argv[2]);
            nats_Close();
            return 0;
        }
    }
    fail("unknown mode %s", argv[2]);
    return 1;
}
