/* Linked against the static library only: this program defines functions
 * with the names the library uses inside (nanopb's, the generated message
 * descriptor's, and portreg's own internal helpers). If any of them were
 * still global in libportreg.a, the link would fail with "multiple
 * definition", or portreg would call these instead of its own. */
#include <portreg.h>

#include <stdio.h>
#include <stdlib.h>

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "collide: %s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);      \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

static int calls;

#define DEFINE(name)                                                                               \
    int name(void);                                                                                \
    int name(void)                                                                                 \
    {                                                                                              \
        return ++calls;                                                                            \
    }
DEFINE(pb_decode)
DEFINE(pb_encode)
DEFINE(pb_istream_from_buffer)
DEFINE(pb_ostream_from_buffer)
DEFINE(pb_decode_tag)
DEFINE(pb_field_iter_begin)
DEFINE(running_process_broker_v2_BackendHttpReady_msg)
DEFINE(mem_alloc)
DEFINE(mem_free)
DEFINE(table_new)
DEFINE(table_insert)
DEFINE(writer_lock)
DEFINE(writer_unlock)
DEFINE(notify_change)
DEFINE(slot_free)
DEFINE(reader_new)
DEFINE(compact_if_due)
DEFINE(membarrier_setup)

int main(void)
{
    CHECK(pb_decode() == 1 && writer_lock() == 2);
    portreg_t *reg = portreg_create(NULL);
    CHECK(reg != NULL);
    uint8_t body[PORTREG_READY_MAX_SIZE];
    int len = portreg_encode_ready(8080, body, sizeof body);
    uint16_t port = 0;
    CHECK(len > 0);
    CHECK(portreg_decode_and_register(reg, "svc", 3, body, (size_t)len, &port) == 0);
    CHECK(portreg_lookup(reg, "svc", 3, &port) && port == 8080);
    CHECK(portreg_untrack(reg, "svc", 3, NULL) == 0);
    portreg_destroy(reg);
    /* The library never called the functions above. */
    CHECK(calls == 2);
    printf("collide: the static library keeps its internal names to itself\n");
    return 0;
}
