/* An outside program: built against the installed header and library
 * (pkg-config or find_package), it uses every public function, from
 * several threads at once, and checks what it gets back. */
#include <portreg.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "consumer: %s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);     \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

#define THREADS 4
#define ROUNDS  20000

static portreg_t *reg;

static void *worker(void *arg)
{
    int t = (int)(long)arg;
    char id[32];
    int n = snprintf(id, sizeof id, "worker-%d", t);
    CHECK(portreg_thread_attach(reg) == 0);
    portreg_handle_t *shared;
    CHECK(portreg_handle_open(reg, "shared", 6, &shared) == 0);
    for (int i = 1; i <= ROUNDS; i++) {
        portreg_state_t prev, now;
        uint16_t port = 0;
        CHECK(portreg_register(reg, id, (size_t)n, (uint16_t)i, &prev) == 0);
        CHECK(portreg_lookup(reg, id, (size_t)n, &port) && port == i);
        CHECK(portreg_get(reg, id, (size_t)n, &now) == 0 && now.port == i);
        if (i % 100 == 0) {
            CHECK(portreg_unbind(reg, id, (size_t)n, NULL) == 0);
            CHECK(portreg_untrack(reg, id, (size_t)n, &prev) == 0);
            CHECK(prev.status == PORTREG_PENDING);
            CHECK(portreg_track(reg, id, (size_t)n) == 0);
        }
        CHECK(portreg_lookup(reg, "shared", 6, &port) && port == 7000);
        CHECK(portreg_handle_lookup(shared, &port) && port == 7000);
    }
    portreg_handle_close(shared);
    return NULL;
}

int main(void)
{
    printf("portreg %s (header %d.%d.%d)\n", portreg_version_string(), PORTREG_VERSION_MAJOR,
           PORTREG_VERSION_MINOR, PORTREG_VERSION_PATCH);
    CHECK(portreg_version() == PORTREG_VERSION_HEX);
    CHECK(strcmp(portreg_err_name(PORTREG_EDECODE), "PORTREG_EDECODE") == 0);
    CHECK(portreg_strerror(PORTREG_ENOMEM) != NULL);

    portreg_options_t opts;
    portreg_options_init(&opts);
    opts.initial_capacity = 16;
    reg = portreg_create(&opts);
    CHECK(reg != NULL);
    CHECK(portreg_register(reg, "shared", 6, 7000, NULL) == 0);

    pthread_t th[THREADS];
    for (long t = 0; t < THREADS; t++)
        CHECK(pthread_create(&th[t], NULL, worker, (void *)t) == 0);

    /* Iterate and snapshot while the workers run. */
    for (int k = 0; k < 200; k++) {
        portreg_iter_t it;
        portreg_entry_t e;
        int shared = 0;
        portreg_iter_init(&it, reg);
        while (portreg_iter_next(&it, &e))
            shared += e.id_len == 6 && memcmp(e.id, "shared", 6) == 0;
        portreg_iter_fini(&it);
        CHECK(shared == 1);
    }
    for (int t = 0; t < THREADS; t++)
        CHECK(pthread_join(th[t], NULL) == 0);

    portreg_snapshot_t snap;
    CHECK(portreg_snapshot(reg, &snap) == 0);
    CHECK(snap.count == THREADS + 1);
    CHECK(memcmp(snap.entries[THREADS].id, "worker-3", 8) == 0);
    portreg_snapshot_free(&snap);
    CHECK(portreg_count(reg) == THREADS + 1);

    uint8_t body[PORTREG_READY_MAX_SIZE];
    int len = portreg_encode_ready(49152, body, sizeof body);
    uint16_t port = 0;
    CHECK(portreg_decode_port(body, (size_t)len, &port) == 0 && port == 49152);
    CHECK(portreg_decode_and_register(reg, "zccache", 7, body, (size_t)len, &port) == 0);
    len = portreg_encode_ready(70000, body, sizeof body);
    CHECK(portreg_decode_and_register(reg, "zccache", 7, body, (size_t)len, &port) ==
          PORTREG_ERANGE);

    portreg_state_t s;
    CHECK(portreg_get(reg, "zccache", 7, &s) == 0 && s.port == 49152);
    CHECK(portreg_register_if(reg, "zccache", 7, 1, s.version + 1, NULL) == PORTREG_ECONFLICT);
    CHECK(portreg_register_if(reg, "zccache", 7, 49153, s.version, NULL) == 0);
    CHECK(portreg_wait(reg, "zccache", 7, s.version, 0, &s) == 0 && s.port == 49153);
    CHECK(portreg_untrack_if(reg, "zccache", 7, s.version, NULL) == 0);
    CHECK(portreg_eventfd(reg) >= 0);
    CHECK(portreg_changes(reg) > 0);

    portreg_stats_t st;
    CHECK(portreg_stats(reg, &st) == 0 && st.tracked == THREADS + 1);
    CHECK(portreg_reclaim(reg) == 0);

    portreg_handle_t *h;
    size_t hlen = 0;
    CHECK(portreg_handle_open(reg, "zccache", 7, &h) == 0);
    CHECK(portreg_handle_get(h, &s) == 0 && s.status == PORTREG_UNTRACKED);
    CHECK(portreg_register(reg, "zccache", 7, 49154, NULL) == 0);
    CHECK(portreg_handle_wait(h, 0, -1, &s) == 0 && s.port == 49154);
    CHECK(portreg_handle_lookup(h, &port) && port == 49154);
    CHECK(memcmp(portreg_handle_id(h, &hlen), "zccache", 7) == 0 && hlen == 7);
    portreg_handle_close(h);
    uint32_t raw = 0;
    len = portreg_encode_ready(70000, body, sizeof body);
    CHECK(portreg_decode_ready(body, (size_t)len, &raw) == 0 && raw == 70000);
    CHECK(portreg_last_errno() == 0);

    portreg_frame_reader_t fr;
    const uint8_t frame[] = {1, 2, 0, 0, 0, 0x08, 0x50};
    const uint8_t *fbody = NULL;
    size_t used = 0, blen = 0;
    portreg_frame_reader_init(&fr, 0);
    CHECK(portreg_frame_feed(&fr, frame, sizeof frame, &used, &fbody, &blen) == 1);
    CHECK(used == sizeof frame && blen == 2 && portreg_decode_port(fbody, blen, &port) == 0);
    CHECK(portreg_frame_finish(&fr) == 0);
    portreg_frame_reader_fini(&fr);

    portreg_destroy(reg);
    printf("consumer: all checks passed\n");
    return 0;
}
