/*
 * route: routes keys with libconcordkv_topology, then prints topology changes as
 * they arrive.
 *
 *   route [-w SECONDS] [--cacert FILE] SERVER[,SERVER...] KEY...
 *
 * SERVER is host:port, http://host:port or https://host:port. https:// servers
 * are verified with the CA certificate(s) of --cacert FILE (PEM), or of the file
 * named by the environment variable CONCORD_CACERT; the system's trusted roots
 * are not used.
 *
 * Each KEY is printed with its shard, epoch, primary and replicas (with health).
 * Then every change is printed until SECONDS pass (-w; default: until Ctrl-C).
 *
 * Build (from the repository root, after `cargo build -p concord-client`):
 *   cc -std=c11 -Wall -Wextra -pedantic -Iinclude bindings/examples/route.c \
 *      -Ltarget/debug -Wl,-rpath,$PWD/target/debug -lconcordkv_topology -o route
 */
#define _POSIX_C_SOURCE 200809L

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "concordkv_topology.h"

static volatile sig_atomic_t stop = 0;

static void on_signal(int sig) {
    (void)sig;
    stop = 1;
}

static const char *health_name(concordkv_health h) {
    switch (h) {
    case CONCORDKV_HEALTH_HEALTHY: return "healthy";
    case CONCORDKV_HEALTH_DEGRADED: return "degraded";
    case CONCORDKV_HEALTH_UNHEALTHY: return "unhealthy";
    default: return "unknown";
    }
}

static int fail(const char *what, concordkv_result code) {
    char msg[256];
    size_t n = 0;
    concordkv_result_message(code, msg, sizeof msg, &n);
    fprintf(stderr, "route: %s: %s\n", what, msg);
    return 1;
}

/* Runs on the client's thread: print and return at once (never block here). */
static void print_change(void *userdata, const concordkv_change *change) {
    size_t i;
    (void)userdata;
    if (change->reset) {
        printf("change: version %llu -> %llu (whole topology reloaded)\n",
               (unsigned long long)change->previous_version, (unsigned long long)change->version);
    }
    for (i = 0; i < change->event_count; i++) {
        const concordkv_event *e = &change->events[i];
        printf("change: version %llu %s shard=%s node=%s\n", (unsigned long long)e->version,
               e->type_name, e->shard_id ? e->shard_id : "-", e->node_id ? e->node_id : "-");
    }
    fflush(stdout);
}

static int add_servers(concordkv_options *opts, const char *list) {
    char *copy = malloc(strlen(list) + 1), *save = NULL, *item;
    int rc = 0;
    if (copy == NULL) {
        return 1;
    }
    strcpy(copy, list);
    for (item = strtok_r(copy, ",", &save); item != NULL; item = strtok_r(NULL, ",", &save)) {
        concordkv_result code = concordkv_options_add_server(opts, item);
        if (code != CONCORDKV_RESULT_OK) {
            rc = fail(item, code);
            break;
        }
    }
    free(copy);
    return rc;
}

int main(int argc, char **argv) {
    concordkv_options *opts = NULL;
    concordkv_client *client = NULL;
    concordkv_result code;
    uint64_t version = 0, listener = 0;
    double seconds = -1;
    const char *cacert = getenv("CONCORD_CACERT");
    int first = 1, k, rc = 0;
    struct timespec tick = {0, 100 * 1000 * 1000};
    long ticks = 0;

    for (;;) {
        if (argc - first > 1 && strcmp(argv[first], "-w") == 0) {
            seconds = atof(argv[first + 1]);
        } else if (argc - first > 1 && strcmp(argv[first], "--cacert") == 0) {
            cacert = argv[first + 1];
        } else {
            break;
        }
        first += 2;
    }
    if (argc - first < 2) {
        fprintf(stderr, "usage: %s [-w SECONDS] [--cacert FILE] SERVER[,SERVER...] KEY...\n",
                argv[0]);
        return 2;
    }
    if ((code = concordkv_options_new(&opts)) != CONCORDKV_RESULT_OK) {
        return fail("options", code);
    }
    if (cacert != NULL && *cacert != '\0' &&
        (code = concordkv_options_set_ca_file(opts, cacert)) != CONCORDKV_RESULT_OK) {
        concordkv_options_free(opts);
        return fail(cacert, code);
    }
    if (add_servers(opts, argv[first]) != 0) {
        concordkv_options_free(opts);
        return 1;
    }
    code = concordkv_client_new(opts, &client);
    concordkv_options_free(opts);
    if (code != CONCORDKV_RESULT_OK) {
        return fail("client", code);
    }
    if ((code = concordkv_client_wait_ready(client, 10000, &version)) != CONCORDKV_RESULT_OK) {
        char why[512];
        size_t n = 0;
        concordkv_client_last_error(client, why, sizeof why, &n);
        fprintf(stderr, "route: no topology (%s)\n", why);
        concordkv_client_free(client);
        return fail("wait", code);
    }
    printf("topology version %llu\n", (unsigned long long)version);

    for (k = first + 1; k < argc; k++) {
        concordkv_node replicas[16];
        char strings[4096];
        concordkv_route_buffers bufs = {replicas, 16, strings, sizeof strings, 0, 0};
        concordkv_route r;
        size_t i;
        code = concordkv_client_route(client, (const uint8_t *)argv[k], strlen(argv[k]), &bufs, &r);
        if (code != CONCORDKV_RESULT_OK) {
            rc = fail(argv[k], code);
            continue;
        }
        printf("%s -> %s (epoch %llu, hash %016llx) primary %s@%s [%s]", argv[k], r.shard_id,
               (unsigned long long)r.epoch, (unsigned long long)r.key_hash, r.primary.node_id,
               r.primary.address, health_name(r.primary.health));
        for (i = 0; i < r.replica_count; i++) {
            printf(" replica %s@%s [%s]", r.replicas[i].node_id, r.replicas[i].address,
                   health_name(r.replicas[i].health));
        }
        printf("\n");
    }
    fflush(stdout);

    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    if ((code = concordkv_client_on_change(client, print_change, NULL, &listener)) != CONCORDKV_RESULT_OK) {
        concordkv_client_free(client);
        return fail("on_change", code);
    }
    while (!stop && (seconds < 0 || ticks * 0.1 < seconds)) {
        nanosleep(&tick, NULL);
        ticks++;
    }
    concordkv_client_free(client);
    return rc;
}
