#include <stdlib.h>
#include <string.h>

#include "ck_records.h"

struct ck_record_box {
    ck_epoch_record_t rec; /* first: a recycled record is its box */
    struct ck_record_box *next;
};

void ck_records_init(struct ck_records *rs)
{
    ck_epoch_init(&rs->epoch);
    pthread_mutex_init(&rs->lock, NULL);
    rs->boxes = NULL;
}

ck_epoch_record_t *ck_records_enter(struct ck_records *rs)
{
    ck_epoch_record_t *rec = ck_epoch_recycle(&rs->epoch, NULL);
    if (rec != NULL)
        return rec;
    struct ck_record_box *b = aligned_alloc(CK_MD_CACHELINE, sizeof *b);
    if (b == NULL)
        abort();
    memset(b, 0, sizeof *b);
    pthread_mutex_lock(&rs->lock);
    b->next = rs->boxes;
    rs->boxes = b;
    pthread_mutex_unlock(&rs->lock);
    ck_epoch_register(&rs->epoch, &b->rec, NULL);
    return &b->rec;
}

void ck_records_destroy(struct ck_records *rs)
{
    while (rs->boxes != NULL) {
        struct ck_record_box *b = rs->boxes;
        rs->boxes = b->next;
        free(b);
    }
    pthread_mutex_destroy(&rs->lock);
}
