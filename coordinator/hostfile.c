/* hostfile.c: see hostfile.h. */
#define SHOAL_LOG_SUBSYS "hostfile"
#include "coordinator/hostfile.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int name_char(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '_' || c == '-';
}

/* "key=N" with N a decimal in [lo, hi]; 1 if key matched, -1 if it matched with a bad value. */
static int keyval(const char *tok, size_t len, const char *key, long lo, long hi, int *out) {
    size_t kl = strlen(key);
    if (len <= kl + 1 || strncmp(tok, key, kl) != 0 || tok[kl] != '=') return 0;
    char num[24];
    size_t nl = len - kl - 1;
    if (nl >= sizeof num) return -1;
    memcpy(num, tok + kl + 1, nl);
    num[nl] = 0;
    char *end = NULL;
    errno = 0;
    long v = strtol(num, &end, 10);
    if (errno || *end || end == num || v < lo || v > hi) return -1;
    *out = (int)v;
    return 1;
}

shoal_status shoal_hostfile_parse(const char *buf, size_t len, const char *what,
                                  shoal_host **out, int *n) {
    *out = NULL;
    *n = 0;
    shoal_host *hosts = NULL;
    int count = 0, cap = 0, lineno = 0;
    shoal_status st = SHOAL_OK;
    size_t pos = 0;
    while (pos < len) {
        size_t end = pos;
        while (end < len && buf[end] != '\n') end++;
        lineno++;
        size_t stop = end;
        for (size_t i = pos; i < end; i++)
            if (buf[i] == '#') {
                stop = i;
                break;
            }
        /* split into whitespace-separated tokens */
        size_t i = pos;
        int tokn = 0;
        shoal_host h;
        memset(&h, 0, sizeof h);
        h.cpu_slots = 1;
        while (i < stop) {
            while (i < stop && (buf[i] == ' ' || buf[i] == '\t' || buf[i] == '\r')) i++;
            if (i >= stop) break;
            size_t t = i;
            while (i < stop && buf[i] != ' ' && buf[i] != '\t' && buf[i] != '\r') i++;
            size_t tl = i - t;
            if (tokn++ == 0) {
                SHOAL_REQUIRE_GOTO(tl < sizeof h.name, SHOAL_ERR_FORMAT,
                                   "%s:%d: host name longer than %zu bytes", what, lineno,
                                   sizeof h.name - 1);
                for (size_t k = 0; k < tl; k++)
                    SHOAL_REQUIRE_GOTO(name_char(buf[t + k]), SHOAL_ERR_FORMAT,
                                       "%s:%d: host name may only contain letters, digits, "
                                       "'.', '_' and '-'",
                                       what, lineno);
                memcpy(h.name, buf + t, tl);
                h.name[tl] = 0;
                continue;
            }
            int r = keyval(buf + t, tl, "slots", 1, SHOAL_MAX_JOB_RANKS, &h.cpu_slots);
            if (r == 0) r = keyval(buf + t, tl, "gpus", 0, 1024, &h.gpus);
            SHOAL_REQUIRE_GOTO(r == 1, SHOAL_ERR_FORMAT,
                               "%s:%d: \"%.*s\": expected slots=N (1..%d) or gpus=N (0..1024)",
                               what, lineno, (int)(tl < 40 ? tl : 40), buf + t,
                               SHOAL_MAX_JOB_RANKS);
        }
        pos = end + 1;
        if (tokn == 0) continue;
        for (int k = 0; k < count; k++)
            SHOAL_REQUIRE_GOTO(strcmp(hosts[k].name, h.name) != 0, SHOAL_ERR_FORMAT,
                               "%s:%d: host %s listed twice", what, lineno, h.name);
        SHOAL_REQUIRE_GOTO(count < SHOAL_MAX_HOSTS, SHOAL_ERR_LIMIT, "%s: more than %d hosts",
                           what, SHOAL_MAX_HOSTS);
        if (count == cap) {
            cap = cap ? cap * 2 : 8;
            shoal_host *nh = realloc(hosts, (size_t)cap * sizeof *nh);
            SHOAL_REQUIRE_GOTO(nh, SHOAL_ERR_NOMEM, "out of memory");
            hosts = nh;
        }
        snprintf(h.addr, sizeof h.addr, "%s", h.name);
        hosts[count++] = h;
    }
    SHOAL_REQUIRE_GOTO(count > 0, SHOAL_ERR_FORMAT, "%s: no hosts", what);
    *out = hosts;
    *n = count;
    hosts = NULL;
cleanup:
    free(hosts);
    return st;
}
