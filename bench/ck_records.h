/*
 * ck_epoch records for the ck_epoch peers (ck-raw, ck-hs): one per thread,
 * recycled when a thread leaves, all freed with the structure.
 */
#ifndef BENCH_CK_RECORDS_H
#define BENCH_CK_RECORDS_H

#include <pthread.h>

#include <ck_epoch.h>

struct ck_record_box;

struct ck_records {
    ck_epoch_t epoch;
    pthread_mutex_t lock; /* the list of boxes */
    struct ck_record_box *boxes;
};

void ck_records_init(struct ck_records *rs);
/* A record for the calling thread: a recycled one, or a new one. */
ck_epoch_record_t *ck_records_enter(struct ck_records *rs);
/* Frees every record; no thread may use one any more. */
void ck_records_destroy(struct ck_records *rs);

#endif
