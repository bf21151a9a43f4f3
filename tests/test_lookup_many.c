/* portreg_lookup_many(): per id, exactly what portreg_lookup() answers. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"

TestSuite(lookup_many, .init = registry_setup, .fini = registry_teardown, .timeout = 120);

#define NAME_MAX_LEN 48

struct names {
    size_t n;
    char (*buf)[NAME_MAX_LEN];
    portreg_id_t *ids;
};

/* n distinct ids of lengths 1..40 (every branch of the key compare),
 * prefix p. */
static struct names names_make(size_t n, const char *p)
{
    struct names s = {n, calloc(n, NAME_MAX_LEN), calloc(n, sizeof(portreg_id_t))};
    cr_assert(s.buf != NULL && s.ids != NULL);
    for (size_t i = 0; i < n; i++) {
        int len = snprintf(s.buf[i], NAME_MAX_LEN, "%s%zx.%s", p, i,
                           "abcdefghijklmnopqrstuvwxyz0123456789ABCD");
        size_t want = 1 + i % 40, min = strlen(p) + 4;
        /* Short names keep only the distinct prefix and index. */
        if (want < min)
            want = (size_t)snprintf(s.buf[i], NAME_MAX_LEN, "%s%zx", p, i);
        s.ids[i].id = s.buf[i];
        s.ids[i].id_len = want < (size_t)len ? want : (size_t)len;
    }
    return s;
}

static void names_free(struct names *s)
{
    free(s->buf);
    free(s->ids);
}

/* Asserts that lookup_many on ids answers as portreg_lookup() on each. */
static void assert_many_matches_single(portreg_t *r, const portreg_id_t *ids, size_t n)
{
    uint16_t *ports = malloc((n + 1) * sizeof *ports);
    cr_assert_not_null(ports);
    ports[n] = 0xbeef;
    ptrdiff_t bound = portreg_lookup_many(r, ids, n, ports);
    cr_assert_geq(bound, 0);
    ptrdiff_t want = 0;
    for (size_t i = 0; i < n; i++) {
        uint16_t p = 0;
        bool hit = portreg_lookup(r, ids[i].id, ids[i].id_len, &p);
        cr_assert_eq(ports[i], hit ? p : 0, "id %zu (%.*s): many %u, single %s %u", i,
                     (int)(ids[i].id_len < 64 ? ids[i].id_len : 0),
                     ids[i].id != NULL ? ids[i].id : "", ports[i], hit ? "hit" : "miss", p);
        want += hit;
    }
    cr_assert_eq(bound, want);
    cr_assert_eq(ports[n], 0xbeef, "wrote past ports[n - 1]");
    free(ports);
}

Test(lookup_many, answers_every_state_as_lookup_does)
{
    struct names s = names_make(300, "svc-");
    for (size_t i = 0; i < s.n; i++) {
        const char *id = s.ids[i].id;
        size_t len = s.ids[i].id_len;
        switch (i % 5) {
        case 0: /* never seen: absent from the table */
            break;
        case 1:
            cr_assert_eq(portreg_track(reg, id, len), 0);
            break;
        case 2:
            cr_assert_eq(portreg_register(reg, id, len, (uint16_t)(1000 + i), NULL), 0);
            break;
        case 3: /* bound, then untracked: in the table, untracked */
            cr_assert_eq(portreg_register(reg, id, len, (uint16_t)(1000 + i), NULL), 0);
            cr_assert_eq(portreg_untrack(reg, id, len, NULL), 0);
            break;
        case 4: /* bound, then unbound: pending */
            cr_assert_eq(portreg_register(reg, id, len, (uint16_t)(1000 + i), NULL), 0);
            cr_assert_eq(portreg_unbind(reg, id, len, NULL), 0);
            break;
        }
    }
    uint16_t ports[300];
    cr_assert_eq(portreg_lookup_many(reg, s.ids, s.n, ports), 60);
    for (size_t i = 0; i < s.n; i++)
        cr_assert_eq(ports[i], i % 5 == 2 ? 1000 + i : 0, "id %zu", i);
    assert_many_matches_single(reg, s.ids, s.n);
    names_free(&s);
}

Test(lookup_many, invalid_ids_read_as_unbound_and_the_rest_still_answer)
{
    static char long_id[PORTREG_ID_MAX + 1];
    memset(long_id, 'x', sizeof long_id);
    cr_assert_eq(portreg_register(reg, ID("api"), 8080, NULL), 0);
    cr_assert_eq(portreg_register(reg, long_id, PORTREG_ID_MAX, 8081, NULL), 0);
    portreg_id_t ids[] = {
        {NULL, 3}, {"api", 0}, {long_id, PORTREG_ID_MAX + 1}, {"api", 3}, {long_id, PORTREG_ID_MAX},
    };
    uint16_t ports[5] = {1, 1, 1, 1, 1};
    cr_assert_eq(portreg_lookup_many(reg, ids, 5, ports), 2);
    cr_assert_eq(ports[0], 0);
    cr_assert_eq(ports[1], 0);
    cr_assert_eq(ports[2], 0);
    cr_assert_eq(ports[3], 8080);
    cr_assert_eq(ports[4], 8081);
    assert_many_matches_single(reg, ids, 5);
}

Test(lookup_many, ids_of_one_to_eight_bytes_compare_every_byte)
{
    /* Every length below 8, ids that differ in one byte only. */
    char buf[8][8][8];
    portreg_id_t ids[64];
    for (size_t len = 1; len <= 8; len++)
        for (size_t pos = 0; pos < len; pos++) {
            char *b = buf[len - 1][pos];
            memset(b, 'k', len);
            b[pos] = 'q';
            ids[(len - 1) * 8 + pos] = (portreg_id_t){b, len};
            if ((len + pos) % 2 == 0)
                cr_assert_eq(portreg_register(reg, b, len, (uint16_t)(100 * len + pos), NULL), 0);
        }
    /* Unused cells: the all-'k' ids, none registered. */
    for (size_t len = 1; len <= 8; len++)
        for (size_t pos = len; pos < 8; pos++) {
            memset(buf[len - 1][pos], 'k', len);
            ids[(len - 1) * 8 + pos] = (portreg_id_t){buf[len - 1][pos], len};
        }
    uint16_t ports[64];
    cr_assert_eq(portreg_lookup_many(reg, ids, 64, ports), 16);
    for (size_t len = 1; len <= 8; len++)
        for (size_t pos = 0; pos < 8; pos++)
            cr_assert_eq(ports[(len - 1) * 8 + pos],
                         pos < len && (len + pos) % 2 == 0 ? 100 * len + pos : 0, "len %zu pos %zu",
                         len, pos);
    assert_many_matches_single(reg, ids, 64);
}

Test(lookup_many, bad_arguments_return_einval_and_write_nothing)
{
    portreg_id_t ids[1] = {{"api", 3}};
    uint16_t ports[1] = {77};
    cr_assert_eq(portreg_lookup_many(NULL, ids, 1, ports), PORTREG_EINVAL);
    cr_assert_eq(portreg_lookup_many(reg, NULL, 1, ports), PORTREG_EINVAL);
    cr_assert_eq(portreg_lookup_many(reg, ids, 1, NULL), PORTREG_EINVAL);
    cr_assert_eq(portreg_lookup_many(reg, ids, (size_t)PTRDIFF_MAX + 1, ports), PORTREG_EINVAL);
    cr_assert_eq(ports[0], 77);
    /* Nothing to look up: NULL arrays are fine. */
    cr_assert_eq(portreg_lookup_many(reg, NULL, 0, NULL), 0);
}

Test(lookup_many, many_groups_in_any_order_and_repeats)
{
    struct names s = names_make(5000, "backend.");
    for (size_t i = 0; i < s.n; i += 2)
        cr_assert_eq(portreg_register(reg, s.ids[i].id, s.ids[i].id_len, (uint16_t)(1 + i), NULL),
                     0);
    /* A shuffled request list with repeats, of a length no group size
     * divides. */
    size_t n = 7777;
    portreg_id_t *req = malloc(n * sizeof *req);
    cr_assert_not_null(req);
    uint64_t x = 42;
    for (size_t i = 0; i < n; i++) {
        x = x * 6364136223846793005u + 1442695040888963407u;
        req[i] = s.ids[(x >> 33) % s.n];
    }
    assert_many_matches_single(reg, req, n);
    for (size_t k = 0; k <= 70; k++) /* every short length, group edges included */
        assert_many_matches_single(reg, req + k, k);
    free(req);
    names_free(&s);
}

Test(lookup_many, answers_across_growth_compaction_and_reuse_of_ids)
{
    struct names s = names_make(20000, "grow-");
    for (size_t i = 0; i < s.n; i++) {
        cr_assert_eq(
            portreg_register(reg, s.ids[i].id, s.ids[i].id_len, (uint16_t)(1 + i % 60000), NULL),
            0);
        if (i % 4096 == 0)
            assert_many_matches_single(reg, s.ids, s.n); /* between growths */
    }
    /* Untrack most: compactions rebuild the table without them. */
    for (size_t i = 0; i < s.n; i++)
        if (i % 10 != 0)
            cr_assert_eq(portreg_untrack(reg, s.ids[i].id, s.ids[i].id_len, NULL), 0);
    cr_assert_gt(stats_now().compactions, 0);
    assert_many_matches_single(reg, s.ids, s.n);
    /* And back again, with other ports. */
    for (size_t i = 0; i < s.n; i += 3)
        cr_assert_eq(portreg_register(reg, s.ids[i].id, s.ids[i].id_len, 4242, NULL), 0);
    assert_many_matches_single(reg, s.ids, s.n);
    names_free(&s);
}

/* An id that aliases a slot's bytes with another length is another id, as
 * for portreg_lookup() (ck_ht matches on the key pointer alone). */
Test(lookup_many, an_alias_into_a_slot_is_looked_up_by_its_own_length)
{
    cr_assert_eq(portreg_register(reg, ID("svc-alias-long"), 5000, NULL), 0);
    cr_assert_eq(portreg_register(reg, ID("svc"), 6000, NULL), 0);
    portreg_iter_t it;
    portreg_entry_t e;
    portreg_iter_init(&it, reg);
    const char *inside = NULL;
    while (portreg_iter_next(&it, &e))
        if (e.id_len == 14)
            inside = e.id;
    cr_assert_not_null(inside);
    portreg_id_t ids[2] = {{inside, 14}, {inside, 3}};
    uint16_t ports[2];
    cr_assert_eq(portreg_lookup_many(reg, ids, 2, ports), 2);
    cr_assert_eq(ports[0], 5000);
    cr_assert_eq(ports[1], 6000);
    portreg_iter_fini(&it);
}

/* Concurrent writers: ids bound before the readers start and never
 * touched always answer their port; ids never inserted never answer; ids
 * in churn answer 0 or one of the ports they were given. */
#define STABLE 2000
#define CHURN  2000
#define ROUNDS 40

static struct names stable, churn, never;
static atomic_bool stop;

static void *churn_writer(void *arg)
{
    (void)arg;
    /* Odd rounds untrack every churned id: half the table is then dead,
     * which makes the untracks compact it. */
    for (int round = 0; round < ROUNDS; round++) {
        for (size_t i = 0; i < CHURN; i++) {
            const portreg_id_t *id = &churn.ids[i];
            if (round % 2 == 1)
                cr_assert_eq(portreg_untrack(reg, id->id, id->id_len, NULL), 0);
            else
                cr_assert_eq(
                    portreg_register(reg, id->id, id->id_len, (uint16_t)(30000 + round % 7), NULL),
                    0);
        }
    }
    atomic_store(&stop, true);
    return NULL;
}

static void *many_reader(void *arg)
{
    (void)arg;
    size_t n = STABLE + CHURN + STABLE;
    portreg_id_t *req = malloc(n * sizeof *req);
    uint16_t *ports = malloc(n * sizeof *ports);
    cr_assert(req != NULL && ports != NULL);
    for (size_t i = 0; i < STABLE; i++) {
        req[3 * i] = stable.ids[i];
        req[3 * i + 1] = churn.ids[i];
        req[3 * i + 2] = never.ids[i];
    }
    unsigned rounds = 0;
    do {
        ptrdiff_t bound = portreg_lookup_many(reg, req, n, ports);
        cr_assert_geq(bound, STABLE);
        for (size_t i = 0; i < STABLE; i++) {
            cr_assert_eq(ports[3 * i], 1 + i, "stable id %zu", i);
            cr_assert(ports[3 * i + 1] == 0 ||
                          (ports[3 * i + 1] >= 30000 && ports[3 * i + 1] < 30007),
                      "churned id %zu: port %u", i, ports[3 * i + 1]);
            cr_assert_eq(ports[3 * i + 2], 0, "never-inserted id %zu", i);
        }
        rounds++;
    } while (!atomic_load(&stop));
    free(req);
    free(ports);
    return (void *)(uintptr_t)rounds;
}

Test(lookup_many, readers_see_stable_ports_while_a_writer_churns_and_compacts)
{
    stable = names_make(STABLE, "stable-");
    churn = names_make(CHURN, "churn-");
    never = names_make(STABLE, "never-");
    atomic_store(&stop, false);
    for (size_t i = 0; i < STABLE; i++)
        cr_assert_eq(
            portreg_register(reg, stable.ids[i].id, stable.ids[i].id_len, (uint16_t)(1 + i), NULL),
            0);
    pthread_t r[2], w;
    for (int i = 0; i < 2; i++)
        cr_assert_eq(pthread_create(&r[i], NULL, many_reader, NULL), 0);
    cr_assert_eq(pthread_create(&w, NULL, churn_writer, NULL), 0);
    pthread_join(w, NULL);
    for (int i = 0; i < 2; i++) {
        void *rounds;
        pthread_join(r[i], &rounds);
        cr_assert_gt((uintptr_t)rounds, 0);
    }
    cr_assert_gt(stats_now().compactions, 0, "the writer never compacted");
    names_free(&stable);
    names_free(&churn);
    names_free(&never);
}
