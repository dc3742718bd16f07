/* examples/pipeline: checksum files with a bounded pool of worker tasks fed by a channel,
 * their results coming back on another, the whole run under one deadline.
 *
 *   pipeline [-j WORKERS] [-d DEADLINE_MS] FILE...
 *
 * Prints "CRC SIZE FILE" for each file in the order given, the CRC being POSIX cksum's (so
 * the output matches `cksum FILE...`). A feeder task sends job numbers into a channel of
 * WORKERS places, so it runs at most that far ahead; WORKERS tasks take jobs, read their
 * file in 64 KiB chunks (yielding between chunks, so a huge file does not hold up the rest)
 * and send a result; main receives results with the deadline and prints them as their turn
 * comes. When the deadline passes, main closes the job channel and cancels the workers,
 * which stop at once. Exit status: 0, 1 when a file could not be read, 2 when the deadline
 * passed first. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "weft.h"

struct result {
    int job;
    int err;                /* 0, or the errno that stopped the file */
    uint32_t crc;
    uint64_t size;
};

static char **files;
static int nfiles;
static weft_chan *jobs, *results;
static uint32_t crc_table[256];

/* POSIX cksum: CRC-32 with polynomial 0x04C11DB7, most significant bit first, over the
 * data and then its length (least significant byte first, no zero bytes), inverted. */
static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i << 24;
        for (int k = 0; k < 8; k++)
            c = c & 0x80000000u ? (c << 1) ^ 0x04C11DB7u : c << 1;
        crc_table[i] = c;
    }
}

static uint32_t crc_add(uint32_t crc, const unsigned char *p, size_t n)
{
    while (n--)
        crc = (crc << 8) ^ crc_table[(crc >> 24) ^ *p++];
    return crc;
}

static uint32_t crc_end(uint32_t crc, uint64_t size)
{
    for (; size; size >>= 8) {
        unsigned char b = (unsigned char)size;
        crc = crc_add(crc, &b, 1);
    }
    return ~crc;
}

static void checksum(struct result *r, const char *path)
{
    static __thread unsigned char buf[64 * 1024];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        r->err = errno;
        return;
    }
    uint32_t crc = 0;
    ssize_t n;
    while ((n = weft_read(fd, buf, sizeof buf)) > 0) {
        crc = crc_add(crc, buf, (size_t)n);
        r->size += (uint64_t)n;
        if (weft_yield() != 0) {        /* cancelled: the deadline passed */
            errno = ECANCELED;
            n = -1;
            break;
        }
    }
    r->err = n < 0 ? errno : 0;
    r->crc = crc_end(crc, r->size);
    weft_close(fd);
}

static void *feeder(void *arg)
{
    (void)arg;
    for (int i = 0; i < nfiles; i++)
        if (weft_chan_send(jobs, &i, -1) != 0)
            return NULL;                /* closed by main: the deadline passed */
    weft_chan_close(jobs);
    return NULL;
}

static void *worker(void *arg)
{
    (void)arg;
    int job;
    while (weft_chan_recv(jobs, &job, -1) == 0) {
        struct result r = { job, 0, 0, 0 };
        checksum(&r, files[job]);
        if (r.err == ECANCELED || weft_chan_send(results, &r, -1) != 0)
            break;
    }
    return NULL;
}

static int nworkers = 4;
static int64_t deadline_ms = -1;
static int status;

/* Receive results until all are in or the deadline passes, printing each in its turn;
 * then stop what is left. */
static void *run(void *arg)
{
    (void)arg;
    struct result *got = calloc((size_t)nfiles, sizeof *got);
    char *have = calloc((size_t)nfiles, 1);
    weft_task **w = calloc((size_t)nworkers, sizeof *w);
    weft_attr detached = { .detached = 1 };     /* weft_main waits for it all the same */
    if (!got || !have || !w || !weft_spawn(&detached, feeder, NULL)) {
        perror("pipeline");
        exit(1);
    }
    for (int i = 0; i < nworkers; i++)
        if (!(w[i] = weft_go(worker, NULL))) {
            perror("pipeline: spawn");
            exit(1);
        }
    int64_t deadline = deadline_ms < 0 ? -1 : weft_now() + deadline_ms;
    int next = 0, done = 0;
    struct result r;
    while (done < nfiles && weft_chan_recv(results, &r, deadline) == 0) {
        got[r.job] = r;
        have[r.job] = 1;
        done++;
        for (; next < nfiles && have[next]; next++) {
            if (got[next].err) {
                fprintf(stderr, "pipeline: %s: %s\n", files[next], strerror(got[next].err));
                status = 1;
            } else {
                printf("%" PRIu32 " %" PRIu64 " %s\n", got[next].crc, got[next].size, files[next]);
            }
        }
    }
    if (done < nfiles) {
        fprintf(stderr, "pipeline: deadline passed with %d of %d files unfinished\n",
                nfiles - done, nfiles);
        status = 2;
        weft_chan_close(jobs);          /* the feeder stops; idle workers wake with EPIPE */
        for (int i = 0; i < nworkers; i++)
            weft_cancel(w[i]);          /* busy ones stop at their next yield or wait */
    }
    for (int i = 0; i < nworkers; i++)
        weft_join(w[i], NULL);
    free(got);
    free(have);
    free(w);
    return NULL;
}

static void usage(void)
{
    fprintf(stderr, "usage: pipeline [-j WORKERS] [-d DEADLINE_MS] FILE...\n");
    exit(64);
}

int main(int argc, char **argv)
{
    int c;
    while ((c = getopt(argc, argv, "j:d:")) != -1) {
        switch (c) {
        case 'j': nworkers = atoi(optarg); break;
        case 'd': deadline_ms = atol(optarg); break;
        default: usage();
        }
    }
    files = argv + optind;
    nfiles = argc - optind;
    if (nfiles < 1 || nworkers < 1 || nworkers > 1024)
        usage();
    crc_init();
    jobs = weft_chan_make(sizeof(int), (size_t)nworkers);
    results = weft_chan_make(sizeof(struct result), (size_t)nworkers);
    if (!jobs || !results) {
        perror("pipeline");
        return 1;
    }
    weft_chan_set_name(jobs, "jobs");
    weft_chan_set_name(results, "results");
    if (weft_main(run, NULL) != 0) {
        perror("pipeline: weft_main");
        return 1;
    }
    weft_chan_free(jobs);
    weft_chan_free(results);
    return status;
}
