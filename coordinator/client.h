/* client.h: how the CLI finds and authenticates to the coordinator.
 *
 * Resolution, first match wins per setting: command-line flags (--coordinator ADDR,
 * --token-file F, --tls-ca F, --tls-cert F, --tls-key F), then the environment
 * (SHOAL_COORDINATOR, SHOAL_TOKEN, SHOAL_TOKEN_FILE, SHOAL_TLS_CA, SHOAL_TLS_CERT,
 * SHOAL_TLS_KEY), then ~/.config/shoal/config.json ({"coordinator": ..., "token_file": ...,
 * "tls_ca": ..., "tls_cert": ..., "tls_key": ...}), then 127.0.0.1:7070 with no credentials.
 * Why shaped so: like kubectl/gh: flags for one-offs, env for scripts, a file for every day.
 * Tested by tests/coordinator/test_e2e.sh.
 */
#ifndef SHOAL_COORDINATOR_CLIENT_H
#define SHOAL_COORDINATOR_CLIENT_H

#include "common/limits.h"
#include "proto/rpc.h"

typedef struct {
    char target[512];
    char token[256];
    char tls_ca[SHOAL_MAX_PATH], tls_cert[SHOAL_MAX_PATH], tls_key[SHOAL_MAX_PATH];
} shoal_client_conf;

/* Remove the connection flags from argv (argc updated) and resolve every setting. */
shoal_status shoal_client_conf_resolve(int *argc, char **argv, shoal_client_conf *c);
shoal_status shoal_client_connect(const shoal_client_conf *c, shoal_rpc_client **out);

#endif
