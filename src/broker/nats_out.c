/* Delivering messages to NATS subscriptions (see nats_out.h). */
#include "broker/nats_out.h"

#include <stdlib.h>
#include <string.h>

#include "auth/nats_users.h"
#include "broker/internal.h"
#include "core/base64.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/vec.h"
#include "nats/nats.h"

/* The header that carries MQTT 5 correlation data across (base64). */
static const char correlation_header[] = "Ward-Correlation-Data";

/* see nats_out.h */
bool nats_out_accepts(const struct nats_sub *ns, const struct msg *m, const void *from)
{
    if (!ns->c->nats->echo && from && ns->c->s == from)
        return false;
    /* "a.>" is "a/#" in the tree, which also matches "a" itself. */
    if (ns->gt_tail && m->topic_len <= ns->gt_prefix)
        return false;
    return true;
}

static uint16_t be16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

/* A header block for an MQTT publisher's message: its user properties (in
 * order, repeats kept), content type and correlation data. A pair NATS
 * cannot carry (a name with ':' or blanks, a line break) is left out on its
 * own. Returns a block to free (NULL: none) and its length in *len. */
static uint8_t *mqtt_headers(const struct msg *m, size_t *len)
{
    *len = 0;
    if (!m->user_raw_len && !m->content_type_len && !m->correlation_len)
        return NULL; /* the common case: nothing to carry */
    size_t n = 0, cap = 2;
    for (const uint8_t *p = m->user_raw, *end = p + m->user_raw_len; p + 5 <= end;) {
        uint16_t kl = be16(p + 1);
        if (p + 3 + kl + 2 > end || p + 5 + kl + be16(p + 3 + kl) > end)
            break;
        p += 5 + kl + be16(p + 3 + kl);
        n++;
    }
    n += 2; /* content type, correlation data */
    struct nats_str *names = calloc(n, sizeof(*names)), *values = calloc(n, sizeof(*values));
    char *corr = m->correlation_len ? malloc(BASE64_LEN(m->correlation_len) + 1) : NULL;
    uint8_t *out = NULL;
    size_t k = 0;
    *len = 0;
    if (!names || !values || (m->correlation_len && !corr))
        goto done;
    for (const uint8_t *p = m->user_raw, *end = p + m->user_raw_len; p + 5 <= end;) {
        uint16_t kl = be16(p + 1);
        if (p + 3 + kl + 2 > end)
            break;
        uint16_t vl = be16(p + 3 + kl);
        if (p + 5 + kl + vl > end)
            break;
        if (nats_hdr_pair_ok(p + 3, kl, p + 5 + kl, vl)) {
            names[k] = (struct nats_str){p + 3, kl};
            values[k++] = (struct nats_str){p + 5 + kl, vl};
        }
        p += 5 + kl + vl;
    }
    static const char ct[] = "Content-Type";
    if (m->content_type_len && nats_hdr_pair_ok((const uint8_t *)ct, sizeof(ct) - 1,
                                                m->content_type, m->content_type_len)) {
        names[k] = (struct nats_str){(const uint8_t *)ct, sizeof(ct) - 1};
        values[k++] = (struct nats_str){m->content_type, m->content_type_len};
    }
    if (m->correlation_len) {
        base64_encode(m->correlation, m->correlation_len, corr);
        names[k] =
            (struct nats_str){(const uint8_t *)correlation_header, sizeof(correlation_header) - 1};
        values[k++] = (struct nats_str){(const uint8_t *)corr, strlen(corr)};
    }
    if (k == 0)
        goto done;
    cap = 16; /* "NATS/1.0\r\n" and the last "\r\n" */
    for (size_t i = 0; i < k; i++)
        cap += names[i].len + values[i].len + 4;
    if ((out = malloc(cap)) && !(*len = nats_hdr_build(out, cap, 0, NULL, names, values, k))) {
        free(out); /* every pair was checked: only a bug gets here */
        out = NULL;
    }
done:
    free(names);
    free(values);
    free(corr);
    return out;
}

/* Remembers a reply subject the client may answer (allow_responses). */
static void allow_response(struct client *c, const char *reply, size_t len)
{
    struct nats_state *st = c->nats;
    const struct auth_nats_perms *p = st->perms;
    if (!p || !p->allow_responses)
        return;
    /* Bounded: the oldest permission makes room for the newest. */
    if (st->nresp >= 1024) {
        free(st->resp[0].subject);
        memmove(st->resp, st->resp + 1, (st->nresp - 1) * sizeof(*st->resp));
        st->nresp--;
    }
    if (!ward_ok(VEC_RESERVE(st->resp, st->capresp, st->nresp + 1)))
        return;
    char *s = strndup(reply, len);
    if (!s)
        return;
    st->resp[st->nresp++] = (struct nats_resp){
        .subject = s,
        .left = p->responses_max ? p->responses_max : 1,
        .expires_ms = p->responses_expires_ms ? clock_mono_ms() + p->responses_expires_ms : 0,
    };
}

/* see nats_out.h */
bool nats_out_deliver(struct broker *b, struct nats_sub *ns, const struct msg *m, bool *done)
{
    struct client *c = ns->c;
    *done = false;
    if (c->closing || (m->has_expiry && msg_expired(m, clock_mono_ms())))
        return true;
    char subj[65536], reply[65536];
    const char *s = m->nats_subject;
    size_t slen = m->nats_subject_len;
    if (!slen) {
        int n = mqtt_to_nats((const uint8_t *)m->topic, m->topic_len, false, subj, sizeof(subj));
        if (n <= 0)
            return true; /* a topic NATS cannot name (counted as nothing: no NATS client saw it) */
        s = subj, slen = (size_t)n;
    }
    /* nats-server's rule: a subscription wider than a deny entry does not
     * get the denied subjects. */
    if (ns->deny_filter &&
        !auth_nats_may_receive(c->nats->perms, (const uint8_t *)s, slen, (const uint8_t *)ns->queue,
                               ns->queue ? strlen(ns->queue) : 0)) {
        c->b->st.acl_denied++;
        return true;
    }
    const char *r = m->nats_reply;
    size_t rlen = m->nats_reply_len;
    if (!rlen && m->response_topic_len) {
        int n = mqtt_to_nats(m->response_topic, m->response_topic_len, false, reply, sizeof(reply));
        if (n > 0)
            r = reply, rlen = (size_t)n;
    }
    uint8_t *made = NULL;
    const uint8_t *hdr = NULL;
    size_t hlen = 0;
    if (c->nats->headers) {
        if (m->nats_hdr_len)
            hdr = m->nats_hdr, hlen = m->nats_hdr_len;
        else if (!m->nats_subject_len && (made = mqtt_headers(m, &hlen))) /* MQTT's */
            hdr = made;
    }
    size_t cap = 64 + slen + ns->sid_len + rlen + hlen + m->payload_len;
    size_t n = 0;
    if (ward_ok(VEC_RESERVE_EXACT(b->scratch, b->scratch_cap, cap)))
        n = nats_msg_head((char *)b->scratch, cap, s, slen, ns->sid, ns->sid_len, r, rlen, hlen,
                          m->payload_len);
    if (n && hlen)
        memcpy(b->scratch + n, hdr, hlen), n += hlen;
    free(made);
    if (n == 0)
        return true;
    if (m->payload_len)
        memcpy(b->scratch + n, m->payload, m->payload_len), n += m->payload_len;
    b->scratch[n++] = '\r';
    b->scratch[n++] = '\n';
    if (net_conn_send(c->nc, b->scratch, n) < 0) {
        /* Dropped for this subscriber only (mqtt.overload = drop, or a
         * message routed without backpressure): a subscriber that stays
         * over its bound is closed by net after slow_consumer_timeout. */
        b->st.dropped++;
        b->st.dropped_output++;
        return false;
    }
    b->st.msgs_out++;
    b->st.msgs_out_qos[0]++;
    b->st.bytes_out += n;
    c->msgs_out++;
    c->bytes_out += n;
    if (rlen)
        allow_response(c, r, rlen);
    /* UNSUB <sid> <max> counts every message since SUB, as nats-server. */
    if (++ns->delivered >= ns->max && ns->max)
        *done = true;
    return true;
}

/* see nats_out.h */
bool nats_out_raw(struct client *c, const void *p, size_t n)
{
    if (c->closing)
        return false;
    if (net_conn_send_control(c->nc, p, n) < 0) {
        log_notice("%s: output far over its bound (slow consumer); closing", CLIENT_NAME(c));
        client_close(c, "output limit");
        return false;
    }
    c->b->st.bytes_out += n;
    c->bytes_out += n;
    return true;
}

/* see nats_out.h */
void nats_out_err(struct client *c, const char *text, bool close)
{
    char buf[1024];
    size_t n = nats_err_encode(buf, sizeof(buf), text);
    if (n)
        nats_out_raw(c, buf, n);
    if (close && !c->closing)
        client_close(c, text);
}

/* see nats_out.h */
void nats_sub_remove(struct broker *b, struct nats_sub *ns)
{
    struct nats_state *st = ns->c->nats;
    for (struct nats_sub **pp = &st->subs; *pp; pp = &(*pp)->next)
        if (*pp == ns) {
            *pp = ns->next;
            st->nsubs--;
            break;
        }
    subtree_remove(b->subs, (const uint8_t *)ns->filter, strlen(ns->filter), nats_owner(ns));
    free(ns->filter);
    free(ns->subject);
    free(ns->queue);
    free(ns->sid);
    free(ns);
}
