/* job_util.h — internals shared by the job I/O modules (job_input, job_output,
 * job_resume). Not a public API: nothing outside coordinator/job_*.c and
 * tests/job/ should include it (job_split: diffu split / merge).
 *
 *   - a streaming reader of a plain or gzip file (any number of concatenated
 *     gzip members, as gzip(1) and Python's gzip module read them) that says
 *     where each member ends in the compressed file, and why it stopped
 *     (clean end, truncated member, corrupt data);
 *   - a line reader on top of it that opens the file and tells gzip by content
 *     (diffu split / merge);
 *   - one gzip member from one buffer (what the output writer appends);
 *   - a hash map from byte strings to int64 (duplicate ids, the done set);
 *   - a tiny JSON writer on diffu_text (strings, shortest round-trip doubles,
 *     re-serialising a parsed value), UTF-8 validation, base64, edit distance;
 *   - files replaced atomically and durably: from one buffer, or streamed.
 *
 * Ownership: every object is created and freed by the caller (init/free
 * pairs); diffu_text buffers are caller-owned (tokenizer.h). Thread-safety:
 * none of these objects is shared between threads; the pure functions are
 * reentrant. Not collective. */
#ifndef DIFFU_JOB_UTIL_H
#define DIFFU_JOB_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "json.h"
#include "log.h"
#include "tokenizer.h" /* diffu_text */

/* ---- reading plain or gzip files --------------------------------------- */

typedef struct diffu_job_util_reader diffu_job_util_reader;

/* Wrap an open fd (borrowed: not closed by free). gz: 1 inflate gzip members,
 * 0 pass bytes through. name is used in error messages. */
diffu_job_util_reader *diffu_job_util_reader_new(int fd, int gz, const char *name);
void diffu_job_util_reader_free(diffu_job_util_reader **r);

/* Up to cap decompressed bytes into buf. Returns n >= 0, or -1 with err on
 * a read error or, for gzip, a member that is truncated (EOF inside it) or
 * corrupt, or bytes after a member that are not gzip. Returned bytes never
 * span two members, and a read returns at every member end: after it,
 * diffu_job_util_reader_member_ended() is 1 (until the next call), possibly with
 * n == 0 (an empty member, or a call that only consumed a trailer). n == 0
 * without a member end is the clean end of the file (plain: EOF; gzip: EOF
 * right after a complete member, CRC and length checked). */
long diffu_job_util_reader_read(diffu_job_util_reader *r, char *buf, size_t cap, diffu_err *err);
int diffu_job_util_reader_member_ended(const diffu_job_util_reader *r);
/* Compressed offset where the member being read started; after a member
 * ended: the offset just past it (where the next one starts). Plain: bytes
 * consumed so far. */
uint64_t diffu_job_util_reader_member_start(const diffu_job_util_reader *r);
/* Start offset of the member the bytes of the last read came from. */
uint64_t diffu_job_util_reader_data_member(const diffu_job_util_reader *r);
/* Kind of the last failure: 0 none, 1 truncated (EOF inside a member),
 * 2 corrupt data / not gzip, 3 I/O error. */
int diffu_job_util_reader_fail_kind(const diffu_job_util_reader *r);

/* 1 if the file at fd starts with the gzip magic 1f 8b (the fd's offset is
 * left at 0), 0 if not or shorter, -1 on a read error. *size gets st_size. */
int diffu_job_util_sniff_gzip(int fd, uint64_t *size);
/* 1 if name ends in ".gz". */
int diffu_job_util_is_gz_name(const char *name);

/* ---- lines of a plain or gzip file ------------------------------------ */

/* A line reader over diffu_job_util_reader: opens path itself (a regular
 * file, gzip by its content as the job reads it; a pipe: gzip when named .gz)
 * and returns one line at a time with its own terminator. Memory: the
 * reader's buffers plus the longest line. */
typedef struct diffu_job_util_lines diffu_job_util_lines;
/* NULL with "PATH: reason" (missing, not a regular file or pipe, unreadable). */
diffu_job_util_lines *diffu_job_util_lines_open(const char *path, diffu_err *err);
void diffu_job_util_lines_close(diffu_job_util_lines **l);
/* 1: *line / *len hold the next line (NUL-terminated, with its '\n' unless it
 * is a last line without one; valid until the next call); 0: end of file;
 * -1: err, "PATH: truncated or corrupt gzip data after N line(s) (...)",
 * "PATH: corrupt gzip data after N line(s) (...)" or a read error. */
int diffu_job_util_lines_next(diffu_job_util_lines *l, const char **line, size_t *len, diffu_err *err);
/* Lines returned so far (the number of the current one). */
long diffu_job_util_lines_lineno(const diffu_job_util_lines *l);
/* 1 if the file is read as gzip. */
int diffu_job_util_lines_is_gz(const diffu_job_util_lines *l);

/* ---- writing gzip members ---------------------------------------------- */

typedef struct diffu_job_util_deflater diffu_job_util_deflater;
diffu_job_util_deflater *diffu_job_util_deflater_new(int level);
void diffu_job_util_deflater_free(diffu_job_util_deflater **d);
/* Replace out's contents with one complete gzip member holding in[0..n). */
void diffu_job_util_gz_member(diffu_job_util_deflater *d, const char *in, size_t n, diffu_text *out);

/* Write one empty gzip member at offset off of fd (so that an output file
 * with no records yet is still valid gzip for zcat). 0, or -1 with errno. */
int diffu_job_util_write_empty_member(int fd, uint64_t off, uint64_t *len);

/* ---- string -> int64 map (open addressing; keys copied) ----------------- */

typedef struct diffu_job_util_map diffu_job_util_map;
diffu_job_util_map *diffu_job_util_map_new(void);
void diffu_job_util_map_free(diffu_job_util_map **m);
/* 1 and *val if present, else 0. */
int diffu_job_util_map_get(const diffu_job_util_map *m, const char *k, size_t klen, int64_t *val);
/* Insert or overwrite; returns 1 if the key was new. */
int diffu_job_util_map_put(diffu_job_util_map *m, const char *k, size_t klen, int64_t val);
size_t diffu_job_util_map_size(const diffu_job_util_map *m);
/* The key of (id, sample) in a done set: id bytes, 0x00, sample as 4 bytes. */
size_t diffu_job_util_sample_key(char *buf, size_t cap, const char *id, size_t id_len, int sample);

/* FNV-1a 32-bit. */
uint32_t diffu_job_util_fnv1a(const char *s, size_t n);

/* ---- JSON writing ------------------------------------------------------- */

void diffu_job_util_put(diffu_text *t, const char *s);                 /* raw text */
void diffu_job_util_put_str(diffu_text *t, const char *s, size_t n);   /* JSON string (valid UTF-8 expected) */
/* JSON string from any bytes: invalid UTF-8 replaced by U+FFFD. */
void diffu_job_util_put_str_lossy(diffu_text *t, const char *s, size_t n);
void diffu_job_util_put_int(diffu_text *t, long long v);
void diffu_job_util_put_uint(diffu_text *t, unsigned long long v);
/* Shortest text that reads back as the same double; null if not finite. */
void diffu_job_util_put_num(diffu_text *t, double v);
/* ,"key": (comma unless first) */
void diffu_job_util_put_key(diffu_text *t, const char *key, int first);
/* A parsed JSON value, compact. */
void diffu_job_util_put_json(diffu_text *t, const diffu_json *v);
/* Standard base64 of s[0..n) as a JSON string. */
void diffu_job_util_put_base64(diffu_text *t, const unsigned char *s, size_t n);

/* ---- text helpers -------------------------------------------------------- */

/* Byte offset of the first invalid UTF-8 sequence in s[0..n), or n if valid
 * (overlongs, surrogates and > U+10FFFF are invalid, as RFC 3629). */
size_t diffu_job_util_utf8_check(const char *s, size_t n);
/* Levenshtein distance, capped at 255 (for "did you mean"). */
int diffu_job_util_edit_distance(const char *a, const char *b);
/* Write a short printable excerpt of s[0..n) (at most max bytes, non-ASCII
 * and control bytes as \xHH, "..." if cut) to buf. */
void diffu_job_util_excerpt(char *buf, size_t cap, const char *s, size_t n, size_t max);

/* ---- durable files ------------------------------------------------------ */

/* Replace path with len bytes atomically and durably: a temporary file beside
 * it (PATH.tmp.PID), fsync, rename, fsync of the directory. 0, or -1 with one
 * line "FILE: cannot write WHAT: reason" (the temporary file removed). */
int diffu_job_util_write_atomic(const char *path, const void *data, size_t len, const char *what, diffu_err *err);

/* The same for a file written piece by piece (no size limit, nothing held in
 * memory): bytes go to PATH.tmp.PID (mode 0666 & umask; gz: one gzip member,
 * level 6, as gzip(1) writes), commit fsyncs, renames it to path and fsyncs
 * the directory; abort (or a failed commit) removes it. Errors are one line:
 * "TMP: cannot create: reason", "TMP: write failed: reason",
 * "TMP: cannot rename to PATH: reason". */
typedef struct diffu_job_util_afile diffu_job_util_afile;
diffu_job_util_afile *diffu_job_util_afile_open(const char *path, int gz, diffu_err *err);
int diffu_job_util_afile_write(diffu_job_util_afile *f, const void *s, size_t n, diffu_err *err);
/* 0, or -1 with err; *f is freed either way. */
int diffu_job_util_afile_commit(diffu_job_util_afile **f, diffu_err *err);
void diffu_job_util_afile_abort(diffu_job_util_afile **f);
/* The final path. */
const char *diffu_job_util_afile_path(const diffu_job_util_afile *f);

#endif
