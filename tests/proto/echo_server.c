/* echo_server.c: the Echo test service as a standalone process, for tests in other languages
 * (tests/proto/interop_echo.py drives it with Python grpcio). Listens on 127.0.0.1:0 without
 * TLS, with echo_auth, prints "PORT <n>" on stdout, serves until stdin reaches EOF, then shuts
 * down (draining in-flight calls) and exits 0. Tests only. */
#include <stdio.h>

#include "echo_service.h"

int main(void) {
    shoal_rpc_server_config cfg = {0};
    cfg.listen = "127.0.0.1:0";
    cfg.routes = echo_routes;
    cfg.n_routes = ECHO_N_METHODS;
    cfg.auth = echo_auth;
    cfg.max_message_bytes = 64 * 1024;
    shoal_rpc_server *srv = NULL;
    if (shoal_rpc_server_start(&cfg, &srv) != SHOAL_OK) return 1;
    printf("PORT %d\n", shoal_rpc_server_port(srv));
    fflush(stdout);
    char buf[256];
    while (fgets(buf, sizeof buf, stdin)) {
    }
    shoal_rpc_server_free(srv);
    return 0;
}
