/* `ward sub`: subscribe and print messages. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client_opts.h"
#include "commands.h"
#include "core/clock.h"

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

/* see client_opts.h */
void sub_print_message(FILE *out, bool verbose, const struct client_message *m)
{
    if (verbose)
        fprintf(out, "%.*s ", (int)m->topic.len, (const char *)m->topic.p);
    fwrite(m->payload.p, 1, m->payload.len, out);
    fputc('\n', out);
    fflush(out); /* a reader sees each message as it comes */
}

static int subscribe(struct client_opts *o, struct client *c)
{
    uint8_t codes[MAX_TOPICS];
    uint8_t options = (uint8_t)(o->qos | (o->no_local ? MQTT_SUBOPT_NO_LOCAL : 0));
    if (client_subscribe(c, o->topics, o->ntopics, options, 0, codes) < 0) {
        fprintf(stderr, "ward sub: %s\n", client_error(c));
        return EXIT_REFUSED;
    }
    size_t refused = 0;
    for (size_t i = 0; i < o->ntopics; i++)
        if (codes[i] >= 0x80) {
            fprintf(stderr, "ward sub: subscription to '%s' refused: %s (0x%02x)\n", o->topics[i],
                    mqtt_rc_name(codes[i]), codes[i]);
            refused++;
        }
    return refused == o->ntopics ? EXIT_REFUSED : 0;
}

/* Receives until -C messages, -W seconds, a signal or the connection's end. */
static int receive(struct client_opts *o, struct client *c)
{
    uint64_t deadline = o->timeout_s ? clock_mono_ms() + (uint64_t)o->timeout_s * 1000u : 0;
    int got = 0;
    while (!stop) {
        int wait = 500; /* wake now and then to notice signals */
        if (deadline) {
            uint64_t now = clock_mono_ms();
            if (now >= deadline) {
                fprintf(stderr, "ward sub: timed out after %d s\n", o->timeout_s);
                return EXIT_TIMEOUT;
            }
            if (deadline - now < (uint64_t)wait)
                wait = (int)(deadline - now);
        }
        struct client_message m;
        int r = client_next(c, &m, wait);
        if (r < 0) {
            fprintf(stderr, "ward sub: %s\n", client_error(c));
            return EXIT_REFUSED;
        }
        if (r == 0 || (o->no_retained && m.retain))
            continue;
        sub_print_message(stdout, o->verbose, &m);
        if (o->count && ++got >= o->count)
            break;
    }
    return 0;
}

int cmd_sub(int argc, char **argv)
{
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    struct client_opts *o;
    int rc;
    struct client *c = client_opts_start(&o, TOOL_SUB, argc, argv, &rc);
    if (c) {
        rc = subscribe(o, c);
        if (rc == 0)
            rc = receive(o, c);
    }
    client_opts_end(o, c);
    return rc;
}
