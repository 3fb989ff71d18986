/*
 * Drives libconcordkv_topology from C against a real server; run by the Rust
 * integration tests (tests/integration/client/native.rs), which compare its output
 * with the server's own answers.
 *
 *   client_test SERVER KEY...
 *
 * 1. Bad use gets the documented codes (NULL pointers, no servers, unreachable
 *    servers, empty key, buffers too small, unknown listener).
 * 2. Routes each KEY and prints "ROUTE key shard epoch primary address replicas".
 * 3. Prints "READY version hash", reads "WAIT version" from stdin (the test wrote
 *    a change meanwhile), waits (up to 20 s) until the callback has seen that
 *    version, then prints "EVENT version type shard node" for each event seen.
 * 4. Frees everything (ASan's leak checker runs at exit) and prints "DONE".
 */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "concordkv_topology.h"

/* What the change callback saw; it runs on the client's thread. */
#define MAX_LINES 512

struct seen {
    pthread_mutex_t lock;
    uint64_t last_version;
    unsigned events;
    char lines[MAX_LINES][256];
    unsigned line_count;
};

static void on_change(void *userdata, const concordkv_change *change) {
    struct seen *seen = userdata;
    size_t i;
    pthread_mutex_lock(&seen->lock);
    seen->last_version = change->version;
    for (i = 0; i < change->event_count; i++) {
        const concordkv_event *e = &change->events[i];
        if (seen->line_count < MAX_LINES) {
            snprintf(seen->lines[seen->line_count++], 256, "EVENT %llu %s %s %s",
                     (unsigned long long)e->version, e->type_name,
                     e->shard_id ? e->shard_id : "-", e->node_id ? e->node_id : "-");
        }
        seen->events++;
    }
    pthread_mutex_unlock(&seen->lock);
}

static void bad_use(void) {
    concordkv_options *opts = NULL;
    concordkv_client *client = NULL;
    concordkv_route route;
    concordkv_route_buffers bufs;
    uint64_t version = 7, hash = 0;
    char text[64];
    size_t n = 0;

    snprintf(text, sizeof text, "%d.%d.%d", CONCORDKV_TOPOLOGY_VERSION_MAJOR,
             CONCORDKV_TOPOLOGY_VERSION_MINOR, CONCORDKV_TOPOLOGY_VERSION_PATCH);
    ASSERT(strcmp(text, concordkv_version()) == 0);

    CHECK(concordkv_options_new(NULL), CONCORDKV_RESULT_NULL_PARAMETER);
    CHECK(concordkv_options_new(&opts), CONCORDKV_RESULT_OK);
    CHECK(concordkv_client_new(opts, &client), CONCORDKV_RESULT_INVALID_SERVER);
    ASSERT(client == NULL);
    CHECK(concordkv_options_add_server(opts, NULL), CONCORDKV_RESULT_NULL_PARAMETER);
    CHECK(concordkv_options_add_server(opts, "ftp://secure:1"), CONCORDKV_RESULT_INVALID_SERVER);
    CHECK(concordkv_options_set_timeouts(opts, 0, 0), CONCORDKV_RESULT_INVALID_PARAMETER);
    CHECK(concordkv_options_add_server(opts, "127.0.0.1:1"), CONCORDKV_RESULT_OK);
    CHECK(concordkv_options_set_backoff(opts, 10, 50), CONCORDKV_RESULT_OK);
    CHECK(concordkv_client_new(NULL, &client), CONCORDKV_RESULT_NULL_PARAMETER);
    CHECK(concordkv_client_new(opts, NULL), CONCORDKV_RESULT_NULL_PARAMETER);
    CHECK(concordkv_client_new(opts, &client), CONCORDKV_RESULT_OK);
    concordkv_options_free(opts);
    concordkv_options_free(NULL);

    /* An unreachable server list: nothing to route with, and waiting says why. */
    CHECK(concordkv_client_wait_ready(client, 300, &version), CONCORDKV_RESULT_UNREACHABLE);
    ASSERT(version == 7); /* outputs only on success */
    memset(&bufs, 0, sizeof bufs);
    CHECK(concordkv_client_route(client, (const uint8_t *)"k", 1, &bufs, &route),
          CONCORDKV_RESULT_NOT_READY);
    CHECK(concordkv_client_route(client, (const uint8_t *)"k", 0, &bufs, &route),
          CONCORDKV_RESULT_EMPTY_KEY);
    CHECK(concordkv_client_route(client, NULL, 1, &bufs, &route), CONCORDKV_RESULT_NULL_PARAMETER);
    CHECK(concordkv_client_route(client, (const uint8_t *)"k", 1, NULL, &route),
          CONCORDKV_RESULT_NULL_PARAMETER);
    CHECK(concordkv_client_route(NULL, (const uint8_t *)"k", 1, &bufs, &route),
          CONCORDKV_RESULT_NULL_PARAMETER);
    CHECK(concordkv_client_version(client, NULL), CONCORDKV_RESULT_NULL_PARAMETER);
    CHECK(concordkv_client_remove_listener(client, 999), CONCORDKV_RESULT_NOT_FOUND);
    CHECK(concordkv_client_on_change(client, NULL, NULL, &version), CONCORDKV_RESULT_NULL_PARAMETER);
    CHECK(concordkv_client_last_error(client, text, sizeof text, NULL), CONCORDKV_RESULT_NULL_PARAMETER);
    CHECK(concordkv_client_last_error(client, text, 4, &n), CONCORDKV_RESULT_BUFFER_TOO_SMALL);
    ASSERT(n > 4); /* the size needed is reported */
    CHECK(concordkv_key_hash((const uint8_t *)"k", 0, &hash), CONCORDKV_RESULT_EMPTY_KEY);
    CHECK(concordkv_result_message(CONCORDKV_RESULT_EMPTY_KEY, text, sizeof text, &n), CONCORDKV_RESULT_OK);
    ASSERT(strstr(text, "empty") != NULL);
    concordkv_client_free(client);
    concordkv_client_free(NULL);
}

static concordkv_client *connect_to(const char *server) {
    concordkv_options *opts = NULL;
    concordkv_client *client = NULL;
    uint64_t version = 0;
    CHECK(concordkv_options_new(&opts), CONCORDKV_RESULT_OK);
    CHECK(concordkv_options_add_server(opts, server), CONCORDKV_RESULT_OK);
    CHECK(concordkv_client_new(opts, &client), CONCORDKV_RESULT_OK);
    concordkv_options_free(opts);
    CHECK(concordkv_client_wait_ready(client, 20000, &version), CONCORDKV_RESULT_OK);
    ASSERT(version >= 1);
    return client;
}

static void route_key(const concordkv_client *client, const char *key) {
    concordkv_node replicas[8];
    char strings[1024];
    concordkv_node tiny_replicas[1];
    char tiny[4];
    concordkv_route route, untouched;
    concordkv_route_buffers bufs;
    size_t i;

    /* Too small first: the code says so and the sizes needed come back. */
    bufs.replicas = tiny_replicas;
    bufs.replicas_len = 0;
    bufs.strings = tiny;
    bufs.strings_len = sizeof tiny;
    memset(&untouched, 0xAB, sizeof untouched);
    memcpy(&route, &untouched, sizeof route);
    CHECK(concordkv_client_route(client, (const uint8_t *)key, strlen(key), &bufs, &route),
          CONCORDKV_RESULT_BUFFER_TOO_SMALL);
    ASSERT(memcmp(&route, &untouched, sizeof route) == 0);
    ASSERT(bufs.strings_needed > sizeof tiny && bufs.strings_needed <= sizeof strings);
    ASSERT(bufs.replicas_needed <= 8);

    bufs.replicas = replicas;
    bufs.replicas_len = 8;
    bufs.strings = strings;
    bufs.strings_len = sizeof strings;
    CHECK(concordkv_client_route(client, (const uint8_t *)key, strlen(key), &bufs, &route),
          CONCORDKV_RESULT_OK);
    printf("ROUTE %s %s %llu %s %s", key, route.shard_id, (unsigned long long)route.epoch,
           route.primary.node_id, route.primary.address);
    for (i = 0; i < route.replica_count; i++) {
        printf(" %s", route.replicas[i].node_id);
    }
    printf("\n");
}

int main(int argc, char **argv) {
    struct seen seen;
    concordkv_client *client;
    uint64_t version = 0, listener = 0, reached = 0;
    unsigned long long wanted = 0;
    char line[128];
    char hash[32];
    size_t n = 0;
    unsigned i;
    int k;

    if (argc < 3) {
        fprintf(stderr, "usage: %s SERVER KEY...\n", argv[0]);
        return 2;
    }
    bad_use();

    memset(&seen, 0, sizeof seen);
    pthread_mutex_init(&seen.lock, NULL);
    client = connect_to(argv[1]);
    CHECK(concordkv_client_on_change(client, on_change, &seen, &listener), CONCORDKV_RESULT_OK);
    for (k = 2; k < argc; k++) {
        route_key(client, argv[k]);
    }
    CHECK(concordkv_client_config_hash(client, hash, sizeof hash, &n), CONCORDKV_RESULT_OK);
    ASSERT(n == 16);
    CHECK(concordkv_client_version(client, &version), CONCORDKV_RESULT_OK);
    printf("READY %llu %s\n", (unsigned long long)version, hash);
    fflush(stdout);

    /* The test now writes through the HTTP API and tells us the version. */
    if (fgets(line, sizeof line, stdin) == NULL || sscanf(line, "WAIT %llu", &wanted) != 1) {
        fprintf(stderr, "expected WAIT <version> on stdin\n");
        return 1;
    }
    CHECK(concordkv_client_wait_for_version(client, wanted, 20000, &reached), CONCORDKV_RESULT_OK);
    ASSERT(reached >= wanted);
    /* Callbacks run right after the table is published: give them a moment. */
    for (k = 0; k < 2000; k++) {
        uint64_t last;
        struct timespec ms10 = {0, 10 * 1000 * 1000};
        pthread_mutex_lock(&seen.lock);
        last = seen.last_version;
        pthread_mutex_unlock(&seen.lock);
        if (last >= wanted) {
            break;
        }
        nanosleep(&ms10, NULL);
    }
    CHECK(concordkv_client_remove_listener(client, listener), CONCORDKV_RESULT_OK);
    CHECK(concordkv_client_remove_listener(client, listener), CONCORDKV_RESULT_NOT_FOUND);
    pthread_mutex_lock(&seen.lock);
    ASSERT(seen.events > 0);
    for (i = 0; i < seen.line_count; i++) {
        printf("%s\n", seen.lines[i]);
    }
    pthread_mutex_unlock(&seen.lock);
    concordkv_client_free(client);
    pthread_mutex_destroy(&seen.lock);
    printf("DONE\n");
    return 0;
}
