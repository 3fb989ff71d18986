/*
 * Drives libconcordkv_topology over https:// from C; run by the Rust tests of the
 * client library (ffi/tests/tls.rs) against a loopback TLS server.
 *
 *   tls_test URL CA_FILE OTHER_CA_FILE CLIENT_CERT CLIENT_KEY KEY
 *
 * 1. The TLS options get their documented codes: an https:// server without a CA
 *    file, files that are missing or not PEM, a certificate given as a key, a
 *    client certificate without its key (and with it), NULL clearing an option.
 * 2. With OTHER_CA_FILE (a CA that did not sign the server's certificate) the
 *    client never becomes ready, and its last error names the certificate.
 * 3. With CA_FILE it becomes ready and prints "ROUTE key shard epoch primary".
 * 4. Frees everything and prints "DONE".
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "concordkv_topology.h"

/* Options with the server and, unless NULL, this CA file; short backoff. */
static concordkv_options *options_for(const char *url, const char *ca_file) {
    concordkv_options *opts = NULL;
    CHECK(concordkv_options_new(&opts), CONCORDKV_RESULT_OK);
    CHECK(concordkv_options_add_server(opts, url), CONCORDKV_RESULT_OK);
    CHECK(concordkv_options_set_backoff(opts, 20, 100), CONCORDKV_RESULT_OK);
    if (ca_file != NULL) {
        CHECK(concordkv_options_set_ca_file(opts, ca_file), CONCORDKV_RESULT_OK);
    }
    return opts;
}

static void option_codes(const char *url, const char *ca_file, const char *not_pem,
                         const char *client_cert, const char *client_key) {
    concordkv_options *opts = options_for(url, NULL);
    concordkv_client *client = NULL;
    char text[512];
    size_t n = 0;

    /* https:// without a CA file: the system's roots are never trusted instead. */
    CHECK(concordkv_client_new(opts, &client), CONCORDKV_RESULT_INVALID_TLS);
    ASSERT(client == NULL);
    CHECK(concordkv_result_message(CONCORDKV_RESULT_INVALID_TLS, text, sizeof text, &n),
          CONCORDKV_RESULT_OK);
    ASSERT(strstr(text, "CA file") != NULL);

    CHECK(concordkv_options_set_ca_file(NULL, ca_file), CONCORDKV_RESULT_NULL_PARAMETER);
    CHECK(concordkv_options_set_ca_file(opts, "/nonexistent/ca.pem"), CONCORDKV_RESULT_INVALID_TLS);
    CHECK(concordkv_options_set_ca_file(opts, not_pem), CONCORDKV_RESULT_INVALID_TLS);
    CHECK(concordkv_options_set_client_cert_file(opts, not_pem), CONCORDKV_RESULT_INVALID_TLS);
    CHECK(concordkv_options_set_client_key_file(opts, not_pem), CONCORDKV_RESULT_INVALID_TLS);
    CHECK(concordkv_client_new(opts, &client), CONCORDKV_RESULT_INVALID_TLS);

    CHECK(concordkv_options_set_ca_file(opts, ca_file), CONCORDKV_RESULT_OK);
    /* A certificate without its key is refused when the client is made. */
    CHECK(concordkv_options_set_client_cert_file(opts, client_cert), CONCORDKV_RESULT_OK);
    CHECK(concordkv_client_new(opts, &client), CONCORDKV_RESULT_INVALID_TLS);
    CHECK(concordkv_options_set_client_key_file(opts, ca_file), CONCORDKV_RESULT_INVALID_TLS);
    CHECK(concordkv_options_set_client_key_file(opts, client_key), CONCORDKV_RESULT_OK);
    CHECK(concordkv_client_new(opts, &client), CONCORDKV_RESULT_OK);
    concordkv_client_free(client);
    client = NULL;
    CHECK(concordkv_options_set_client_cert_file(opts, NULL), CONCORDKV_RESULT_OK);
    CHECK(concordkv_options_set_client_key_file(opts, NULL), CONCORDKV_RESULT_OK);
    /* NULL clears: back to no CA file, refused again. */
    CHECK(concordkv_options_set_ca_file(opts, NULL), CONCORDKV_RESULT_OK);
    CHECK(concordkv_client_new(opts, &client), CONCORDKV_RESULT_INVALID_TLS);
    ASSERT(client == NULL);
    concordkv_options_free(opts);
}

static void wrong_ca_is_refused(const char *url, const char *other_ca) {
    concordkv_options *opts = options_for(url, other_ca);
    concordkv_client *client = NULL;
    concordkv_route_buffers bufs;
    concordkv_route route;
    uint64_t version = 0;
    char why[1024];
    size_t n = 0;

    CHECK(concordkv_client_new(opts, &client), CONCORDKV_RESULT_OK);
    concordkv_options_free(opts);
    CHECK(concordkv_client_wait_ready(client, 1000, &version), CONCORDKV_RESULT_UNREACHABLE);
    memset(&bufs, 0, sizeof bufs);
    CHECK(concordkv_client_route(client, (const uint8_t *)"k", 1, &bufs, &route),
          CONCORDKV_RESULT_NOT_READY);
    CHECK(concordkv_client_last_error(client, why, sizeof why, &n), CONCORDKV_RESULT_OK);
    ASSERT(strstr(why, "certificate") != NULL);
    printf("REFUSED %s\n", why);
    concordkv_client_free(client);
}

static void route_over_tls(const char *url, const char *ca_file, const char *key) {
    concordkv_options *opts = options_for(url, ca_file);
    concordkv_client *client = NULL;
    concordkv_node replicas[8];
    char strings[1024];
    concordkv_route_buffers bufs = {replicas, 8, strings, sizeof strings, 0, 0};
    concordkv_route route;
    uint64_t version = 0;

    CHECK(concordkv_client_new(opts, &client), CONCORDKV_RESULT_OK);
    concordkv_options_free(opts);
    CHECK(concordkv_client_wait_ready(client, 20000, &version), CONCORDKV_RESULT_OK);
    CHECK(concordkv_client_route(client, (const uint8_t *)key, strlen(key), &bufs, &route),
          CONCORDKV_RESULT_OK);
    printf("ROUTE %s %s %llu %s\n", key, route.shard_id, (unsigned long long)route.epoch,
           route.primary.node_id);
    concordkv_client_free(client);
}

int main(int argc, char **argv) {
    if (argc != 7) {
        fprintf(stderr, "usage: %s URL CA_FILE OTHER_CA_FILE CLIENT_CERT CLIENT_KEY KEY\n",
                argv[0]);
        return 2;
    }
    /* The program itself is not PEM: a file that exists but is not usable. */
    option_codes(argv[1], argv[2], argv[0], argv[4], argv[5]);
    wrong_ca_is_refused(argv[1], argv[3]);
    route_over_tls(argv[1], argv[2], argv[6]);
    printf("DONE\n");
    return 0;
}
