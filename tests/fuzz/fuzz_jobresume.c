/* fuzz_jobresume.c — the resume scanner of an existing job output
 * (coordinator/job_resume.c): JSONL or gzip records, torn tails, corrupt or
 * truncated gzip members, foreign lines. An input that starts with the gzip
 * magic is written as out.jsonl.gz, else out.jsonl, and scanned with repair.
 * Oracles: a refusal is one line and leaves the file as it was; an accepted
 * scan's report adds up (size found - dropped = the cut, = good_bytes except
 * for a gzip file cut to nothing: one 20-byte empty member; records = distinct
 * + duplicates), the repaired file is good_bytes long, what was dropped is saved byte for byte in the .torn file, and
 * scanning the repaired file again finds the same records with nothing to drop. */
#include "fuzz_common.h"
#include "job_resume.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fz_quiet();
    int gz = size >= 2 && data[0] == 0x1f && data[1] == 0x8b;
    const char *p = fz_write_one(gz ? "out.jsonl.gz" : "out.jsonl", data, size);
    diffu_err err;
    err.msg[0] = 0;
    diffu_jobresume *r = diffu_jobresume_scan_path(p, 1, &err);
    struct stat st;
    FZ_CHECK(stat(p, &st) == 0, "the output vanished");
    if (!r) {
        FZ_CHECK(err.msg[0] && !strchr(err.msg, '\n'), "a refusal without a one-line message");
        FZ_CHECK((size_t)st.st_size == size, "a refusal changed the file (%lld bytes, was %zu)", (long long)st.st_size,
                 size);
        fz_clean();
        return 0;
    }
    diffu_jobresume_report a = *diffu_jobresume_get_report(r);
    FZ_CHECK(a.file_bytes == size, "file_bytes %llu vs %zu", (unsigned long long)a.file_bytes, size);
    /* good_bytes is the size after repair: a gzip file cut back to nothing gets one empty 20-byte member
     * (job_resume.h; found by this target: corpus crash-oracle-gz-cut-to-empty) */
    int emptied = a.gz && a.repaired && a.dropped_bytes == a.file_bytes && a.good_bytes == 20;
    uint64_t cut = a.file_bytes - a.dropped_bytes;
    FZ_CHECK(a.dropped_bytes <= a.file_bytes && (a.good_bytes == cut || emptied), "good %llu + dropped %llu != %llu",
             (unsigned long long)a.good_bytes, (unsigned long long)a.dropped_bytes, (unsigned long long)a.file_bytes);
    FZ_CHECK(a.records == a.distinct + a.duplicates && a.records >= 0, "records %ld distinct %ld dup %ld", a.records,
             a.distinct, a.duplicates);
    if (a.dropped_bytes) {
        FZ_CHECK(a.repaired, "bytes dropped without a repair");
        FZ_CHECK((uint64_t)st.st_size == a.good_bytes,
                 "repaired to %lld bytes, expected %llu", (long long)st.st_size, (unsigned long long)a.good_bytes);
        FZ_CHECK(a.saved_to[0], "dropped bytes not saved");
        FILE *f = fopen(a.saved_to, "rb");
        FZ_CHECK(f, "cannot open the saved tail %s", a.saved_to);
        uint8_t *buf = malloc(a.dropped_bytes + 1);
        size_t got = fread(buf, 1, a.dropped_bytes + 1, f);
        fclose(f);
        FZ_CHECK(got == a.dropped_bytes && !memcmp(buf, data + cut, got), "the saved tail differs from what was dropped");
        free(buf);
    } else {
        FZ_CHECK((size_t)st.st_size == size, "nothing dropped but the file changed");
    }
    diffu_jobresume_free(&r);
    diffu_jobresume *r2 = diffu_jobresume_scan_path(p, 1, &err);
    FZ_CHECK(r2, "the repaired file is refused: %s", err.msg);
    const diffu_jobresume_report *b = diffu_jobresume_get_report(r2);
    FZ_CHECK(b->dropped_bytes == 0 && b->records == a.records && b->distinct == a.distinct,
             "rescan: dropped %llu, records %ld/%ld, distinct %ld/%ld", (unsigned long long)b->dropped_bytes, b->records,
             a.records, b->distinct, a.distinct);
    diffu_jobresume_free(&r2);
    fz_clean();
    return 0;
}
