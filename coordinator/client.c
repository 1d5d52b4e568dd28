/* client.c: see client.h. */
#define SHOAL_LOG_SUBSYS "client"
#include "coordinator/client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fileio.h"
#include "common/json.h"

static shoal_status read_token(const char *path, char *out, size_t cap) {
    char *buf = NULL;
    size_t len = 0;
    SHOAL_CHECK(shoal_file_read(path, 4096, &buf, &len));
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r' || buf[len - 1] == ' '))
        buf[--len] = 0;
    int ok = len > 0 && len < cap;
    if (ok) memcpy(out, buf, len + 1);
    free(buf);
    SHOAL_REQUIRE(ok, SHOAL_ERR_FORMAT, "%s: not a token", path);
    return SHOAL_OK;
}

static void set_if_empty(char *dst, size_t cap, const char *v) {
    if (!dst[0] && v && v[0]) snprintf(dst, cap, "%s", v);
}

shoal_status shoal_client_conf_resolve(int *argc, char **argv, shoal_client_conf *c) {
    memset(c, 0, sizeof *c);
    char token_file[SHOAL_MAX_PATH] = "";
    static const char *const flags[] = {"--coordinator", "--token-file", "--tls-ca",
                                        "--tls-cert", "--tls-key"};
    char *const dst[] = {c->target, token_file, c->tls_ca, c->tls_cert, c->tls_key};
    const size_t caps[] = {sizeof c->target, sizeof token_file, sizeof c->tls_ca,
                           sizeof c->tls_cert, sizeof c->tls_key};
    int out = 1;
    for (int i = 1; i < *argc; i++) {
        int hit = -1;
        for (int f = 0; f < 5; f++)
            if (strcmp(argv[i], flags[f]) == 0) hit = f;
        if (hit < 0) {
            argv[out++] = argv[i];
            continue;
        }
        SHOAL_REQUIRE(i + 1 < *argc, SHOAL_ERR_INVALID_ARG, "%s needs a value", flags[hit]);
        snprintf(dst[hit], caps[hit], "%s", argv[++i]);
    }
    *argc = out;
    argv[out] = NULL;
    set_if_empty(c->target, sizeof c->target, getenv("SHOAL_COORDINATOR"));
    set_if_empty(c->token, sizeof c->token, getenv("SHOAL_TOKEN"));
    set_if_empty(token_file, sizeof token_file, getenv("SHOAL_TOKEN_FILE"));
    set_if_empty(c->tls_ca, sizeof c->tls_ca, getenv("SHOAL_TLS_CA"));
    set_if_empty(c->tls_cert, sizeof c->tls_cert, getenv("SHOAL_TLS_CERT"));
    set_if_empty(c->tls_key, sizeof c->tls_key, getenv("SHOAL_TLS_KEY"));
    const char *home = getenv("HOME");
    char cfg[SHOAL_MAX_PATH];
    if (home && snprintf(cfg, sizeof cfg, "%s/.config/shoal/config.json", home) < (int)sizeof cfg &&
        shoal_path_exists(cfg)) {
        json_t *doc = NULL;
        SHOAL_CHECK(shoal_json_load_file(cfg, &doc));
        const char *keys[] = {"coordinator", "token_file", "tls_ca", "tls_cert", "tls_key"};
        shoal_status st = SHOAL_OK;
        for (int k = 0; k < 5 && st == SHOAL_OK; k++) {
            const char *v = NULL;
            st = shoal_json_get_str(doc, keys[k], 0, cfg, &v);
            if (st == SHOAL_OK) set_if_empty(dst[k], caps[k], v);
        }
        json_decref(doc);
        SHOAL_CHECK(st);
    }
    set_if_empty(c->target, sizeof c->target, "127.0.0.1:7070");
    if (!c->token[0] && token_file[0]) SHOAL_CHECK(read_token(token_file, c->token, sizeof c->token));
    return SHOAL_OK;
}

shoal_status shoal_client_connect(const shoal_client_conf *c, shoal_rpc_client **out) {
    shoal_rpc_client_config cc = {.target = c->target,
                                  .tls_ca = c->tls_ca[0] ? c->tls_ca : NULL,
                                  .tls_cert = c->tls_cert[0] ? c->tls_cert : NULL,
                                  .tls_key = c->tls_key[0] ? c->tls_key : NULL,
                                  .bearer_token = c->token[0] ? c->token : NULL};
    return shoal_rpc_client_new(&cc, out);
}
