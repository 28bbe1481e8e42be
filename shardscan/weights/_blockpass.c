/*
 * The default weight pass over one block, compiled.
 *
 * It computes exactly what shardscan/weights/blocks.py computes with NumPy for F32, F16 and
 * BF16 blocks when `deep` is off: exponent histograms per sub-block, the trailing-zero
 * histogram of finite elements, NaN/Inf/zero counts, the finite min and max, the first indices
 * of non-finite, huge and low-trailing-zero elements, and the W5 header prefilter and field
 * check. NumPy needs about ten passes over each chunk for this, a bincount among them; here
 *   - F32: per 4,096-element chunk, one vectorised sweep (W5 flags, counts, extremes) and one
 *     histogram of (exponent, trailing zeros): one increment per element;
 *   - F16/BF16: one histogram bin per bit pattern (one increment per element) and the W5 flags;
 *     everything else is read off the 65,536 bins (exponents per sub-block as range sums);
 *   - index lists by a scan from the block's start that stops once they are complete.
 * Every result is an integer or an exact comparison, so the two paths give identical partials,
 * which tests/test_weight_kernel.py checks.
 *
 * No NumPy headers: inputs and outputs are plain buffers, so the module builds with only a C
 * compiler and the Python headers, and the package still works without it (blocks.py falls
 * back to NumPy).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define CODE_F32 0
#define CODE_F16 1
#define CODE_BF16 2

#define EXP_BINS 256
#define TZ_BINS 25      /* blocks.TZ_BINS: 0..22 exact, 23 capped (F64 only), 24 all-zero mantissa */
#define TZ_ALL_ZERO 24
#define TZ_MAX_K 23     /* blocks.TZ_MAX_K */
#define VALUES16 65536  /* F16/BF16: one histogram bin per bit pattern */

/* Limits handed over from thresholds.py at each call, so the numbers live in one place. */
typedef struct {
    Py_ssize_t sub_block;
    int kept;       /* FIRST_INDICES_KEPT */
    int min_k;      /* W3_MIN_K0 */
    uint32_t huge;  /* bits of the largest float32 magnitude that is not "huge" (W2) */
} limits_t;

typedef struct {
    int64_t n_nan, n_posinf, n_neginf, n_zero;
    float min, max;
    int any_finite;
    int64_t tz[TZ_BINS];
    int64_t nonfinite[64], huge[64];
    int n_nonfinite, n_huge;
    int64_t low_tz[TZ_MAX_K + 1][64];
    int n_low_tz[TZ_MAX_K + 1];
} state_t;

#define CHUNK 4096 /* elements per inner step: a chunk's flags (and F32 values) stay in L1 */

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
/* AVX2 and baseline copies of the vectorisable loops, picked at load time. Integer work only,
 * so both copies give identical results. */
#define CLONES __attribute__((target_clones("avx2", "default")))
#else
#define CLONES
#endif

#define RARE(x) __builtin_expect(!!(x), 0)

static inline uint32_t f16_to_f32(uint32_t h)
{
    uint32_t sign = (h & 0x8000u) << 16, e = (h >> 10) & 0x1Fu, m = h & 0x3FFu;
    if (e == 0x1Fu)
        return sign | 0x7F800000u | (m << 13);
    if (e != 0)
        return sign | ((e + 112u) << 23) | (m << 13);
    if (m == 0)
        return sign;
    /* Subnormal: m * 2**-24, normalised on its leading bit p (0..9). */
    int p = 31 - __builtin_clz(m);
    return sign | ((uint32_t)(p + 103) << 23) | ((m << (23 - p)) & 0x7FFFFFu);
}

static inline uint32_t raw_bits(const void *data, int code, Py_ssize_t i)
{
    return code == CODE_F32 ? ((const uint32_t *)data)[i] : ((const uint16_t *)data)[i];
}

/* An element as fp32 bits: F16/BF16 upcast exactly, as NumPy does. */
static inline uint32_t fp32_bits(uint32_t raw, int code)
{
    return code == CODE_F32 ? raw : code == CODE_BF16 ? raw << 16 : f16_to_f32(raw);
}

static inline int exponent(uint32_t u)
{
    return (int)((u >> 23) & 0xFFu);
}

static inline int trailing(uint32_t u)
{
    uint32_t m = u & 0x7FFFFFu;
    return m ? __builtin_ctz(m) : TZ_ALL_ZERO;
}

/* Order-preserving int32 key of a non-NaN float's bits: float order is signed-integer order. */
static inline int32_t sortable(uint32_t u)
{
    int32_t s = (int32_t)u;
    return s ^ (int32_t)((uint32_t)(s >> 31) & 0x7FFFFFFFu);
}

static inline float unsortable(int32_t k)
{
    uint32_t u = (uint32_t)(k ^ (int32_t)((uint32_t)(k >> 31) & 0x7FFFFFFFu));
    float v;
    memcpy(&v, &u, sizeof v);
    return v;
}

/* ---- W5 prefilter -------------------------------------------------------------------------- */

/* Nonzero if some byte of x is zero (exact: the borrow only runs above a zero byte). */
static inline uint32_t zero_byte(uint32_t x)
{
    return (x - 0x01010101u) & ~x & 0x80808080u;
}

/* Whether a searched byte column of raw holds one of four bytes (packed in `four`, one per byte);
 * `outside` sets the bytes outside the searched columns, so they never match. */
static inline uint32_t byte_in(uint32_t raw, uint32_t four, uint32_t outside)
{
    uint32_t x = raw | outside;
    return zero_byte(x ^ (four & 0xFFu) * 0x01010101u) | zero_byte(x ^ ((four >> 8) & 0xFFu) * 0x01010101u) |
           zero_byte(x ^ ((four >> 16) & 0xFFu) * 0x01010101u) | zero_byte(x ^ (four >> 24) * 0x01010101u);
}

/* First and second bytes of the magics: "\x7fE", "MZ", "PK", "#!" (lowest byte first). */
#define FIRST_BYTES 0x23504D7Fu
#define SECOND_BYTES 0x214B5A45u

/* 16-bit lanes: twice as many per vector as byte_in on 32-bit lanes. */
static inline uint16_t zero_byte16(uint16_t x)
{
    return (uint16_t)((uint16_t)(x - 0x0101u) & (uint16_t)~x & 0x8080u);
}

static inline uint16_t byte_in16(uint16_t x, uint32_t four)
{
    return zero_byte16((uint16_t)(x ^ (four & 0xFFu) * 0x0101u)) |
           zero_byte16((uint16_t)(x ^ ((four >> 8) & 0xFFu) * 0x0101u)) |
           zero_byte16((uint16_t)(x ^ ((four >> 16) & 0xFFu) * 0x0101u)) |
           zero_byte16((uint16_t)(x ^ (four >> 24) * 0x0101u));
}

/* W5 prefilter flags: a first byte of a magic in an element, and a second byte in it or in the
 * next one. A superset of the exact test (classes() and the pair table), which runs on the
 * flagged elements only (~0.5 % of random low bits). `next` is the element after the chunk: the
 * block's, the tail's, or 0 when there is none. */
CLONES static void flags16(const uint16_t *raw, int c, uint32_t next, uint8_t *flag)
{
    uint8_t first[CHUNK], second[CHUNK + 1];
    for (int i = 0; i < c; i++) {
        first[i] = byte_in16(raw[i], FIRST_BYTES) != 0;
        second[i] = byte_in16(raw[i], SECOND_BYTES) != 0;
    }
    second[c] = byte_in16((uint16_t)next, SECOND_BYTES) != 0;
    for (int i = 0; i < c; i++)
        flag[i] = first[i] & (second[i] | second[i + 1]);
}

/* The same for 32-bit elements, searched in their low three bytes. */
static inline __attribute__((always_inline)) void flags32(const uint32_t *raw, int c, uint32_t next, uint8_t *flag)
{
    uint8_t first[CHUNK], second[CHUNK + 1];
    for (int i = 0; i < c; i++) {
        first[i] = byte_in(raw[i], FIRST_BYTES, 0xFF000000u) != 0;
        second[i] = byte_in(raw[i], SECOND_BYTES, 0xFF000000u) != 0;
    }
    second[c] = byte_in(next, SECOND_BYTES, 0xFF000000u) != 0;
    for (int i = 0; i < c; i++)
        flag[i] = first[i] & (second[i] | second[i + 1]);
}

/* Byte classes for the exact W5 test: bit 0 = first byte of a magic, bit 1 = second byte. */
static uint8_t byte_class[256];

/* First-byte bits (columns 0..2) and second-byte bits (shifted by 3) of one on-disk element. */
static inline unsigned classes(uint32_t raw, int width)
{
    unsigned f = 0, s = 0;
    for (int c = 0; c < width; c++) {
        unsigned k = byte_class[(raw >> (8 * c)) & 0xFFu];
        f |= (k & 1u) << c;
        s |= (k >> 1) << c;
    }
    return f | (s << 3);
}

/* The flagged elements of chunk [c0, c0 + c) that pass the exact pair test become candidates. */
static inline void candidates(const void *data, int code, Py_ssize_t n, Py_ssize_t c0, int c,
                              uint8_t *flag, unsigned cls_tail, const uint8_t *pair_table,
                              int32_t *cand, Py_ssize_t *nc)
{
    const int width = code == CODE_F32 ? 3 : 2; /* W5 byte columns searched */
    memset(flag + c, 0, 8);
    for (int i = 0; i < c; i += 8) {
        uint64_t any;
        memcpy(&any, flag + i, 8);
        if (!any)
            continue;
        for (int j = i; j < i + 8 && j < c; j++) {
            if (!flag[j])
                continue;
            Py_ssize_t g = c0 + j;
            unsigned cls = classes(raw_bits(data, code, g), width);
            unsigned next = g + 1 < n ? classes(raw_bits(data, code, g + 1), width) : cls_tail;
            if (pair_table[(cls & 63u) | ((next >> 3) << 6)])
                cand[(*nc)++] = (int32_t)g;
        }
    }
}

/* ---- F32: histograms and a vectorised sweep per chunk --------------------------------------- */

typedef struct {
    uint32_t nan, posinf, neginf, zeros, magmax;
    int32_t kmin, kmax;
} sweep_t;

/* W5 flags, counts, and the finite elements' extremes of a chunk, branch-free: random or
 * tampered data with NaNs in every chunk costs no more than trained weights. */
CLONES static void sweep32(const uint32_t *raw, int c, uint32_t next, uint8_t *flag, sweep_t *o)
{
    uint32_t nan = 0, pinf = 0, ninf = 0, z = 0, mag = 0;
    int32_t kmin = INT32_MAX, kmax = INT32_MIN;
    flags32(raw, c, next, flag);
    for (int i = 0; i < c; i++) {
        uint32_t x = raw[i], m = x & 0x7FFFFFFFu;
        nan += m > 0x7F800000u;
        pinf += x == 0x7F800000u;
        ninf += x == 0xFF800000u;
        z += m == 0;
    }
    for (int i = 0; i < c; i++) {
        uint32_t x = raw[i], m = x & 0x7FFFFFFFu;
        int32_t finite = -(int32_t)(m < 0x7F800000u); /* all ones or zero */
        int32_t k = sortable(x);
        int32_t lo = (k & finite) | (INT32_MAX & ~finite), hi = (k & finite) | (INT32_MIN & ~finite);
        uint32_t fm = m & (uint32_t)finite;
        kmin = lo < kmin ? lo : kmin;
        kmax = hi > kmax ? hi : kmax;
        mag = fm > mag ? fm : mag;
    }
    o->nan = nan;
    o->posinf = pinf;
    o->neginf = ninf;
    o->zeros = z;
    o->magmax = mag;
    o->kmin = kmin;
    o->kmax = kmax;
}

/* One histogram per sub-block over (exponent << 5 | trailing-zero bin): one increment per
 * element gives both the exponent histogram and (exponents below 255) the finite elements'
 * trailing zeros. Trained weights touch a few hundred of its 8,192 bins. */
typedef struct {
    uint32_t kh[EXP_BINS * 32];
} hists32_t;

static void pass32(const uint32_t *data, Py_ssize_t n, int64_t start, const limits_t *lim,
                   const uint8_t *pair_table, long tail, int64_t *sub_hists, int32_t *cand,
                   Py_ssize_t *n_cand, state_t *st, hists32_t *h)
{
    uint8_t flag[CHUNK + 8];
    int32_t kmin = INT32_MAX, kmax = INT32_MIN;
    int64_t n_finite = 0;
    Py_ssize_t nc = 0;
    unsigned cls_tail = tail >= 0 ? classes((uint32_t)tail, 3) : 0;
    for (Py_ssize_t s0 = 0; s0 < n; s0 += lim->sub_block) {
        Py_ssize_t s1 = s0 + lim->sub_block < n ? s0 + lim->sub_block : n;
        memset(h->kh, 0, sizeof h->kh);
        for (Py_ssize_t c0 = s0; c0 < s1; c0 += CHUNK) {
            int c = (int)(s1 - c0 < CHUNK ? s1 - c0 : CHUNK);
            const uint32_t *up = data + c0;
            sweep_t sw;
            sweep32(up, c, c0 + c < n ? up[c] : (tail >= 0 ? (uint32_t)tail : 0), flag, &sw);
            int i;
            for (i = 0; i < c; i++)
                h->kh[exponent(up[i]) << 5 | trailing(up[i])]++;
            uint32_t nonfinite = sw.nan + sw.posinf + sw.neginf;
            n_finite += c - (int64_t)nonfinite;
            st->n_zero += sw.zeros;
            st->n_nan += sw.nan;
            st->n_posinf += sw.posinf;
            st->n_neginf += sw.neginf;
            if (RARE(nonfinite))
                for (i = 0; i < c && st->n_nonfinite < lim->kept; i++)
                    if (exponent(up[i]) == 0xFF)
                        st->nonfinite[st->n_nonfinite++] = start + c0 + i;
            kmin = sw.kmin < kmin ? sw.kmin : kmin;
            kmax = sw.kmax > kmax ? sw.kmax : kmax;
            if (RARE(sw.magmax > lim->huge))
                for (i = 0; i < c && st->n_huge < lim->kept; i++)
                    if ((up[i] & 0x7FFFFFFFu) > lim->huge && exponent(up[i]) != 0xFF)
                        st->huge[st->n_huge++] = start + c0 + i;
            candidates(data, CODE_F32, n, c0, c, flag, cls_tail, pair_table, cand, &nc);
        }
        int64_t *row = sub_hists + (s0 / lim->sub_block) * EXP_BINS;
        for (int e = 0; e < EXP_BINS; e++) {
            const uint32_t *bins = h->kh + (e << 5);
            uint32_t sum = 0;
            for (int t = 0; t < 32; t++)
                sum += bins[t];
            row[e] = sum;
            if (e != 0xFF) /* finite elements only */
                for (int t = 0; t < TZ_BINS; t++)
                    st->tz[t] += bins[t];
        }
    }
    st->any_finite = n_finite > 0;
    st->min = n_finite ? unsortable(kmin) : 0.0f;
    st->max = n_finite ? unsortable(kmax) : 0.0f;
    *n_cand = nc;
}

/* ---- F16/BF16: one histogram bin per bit pattern ------------------------------------------- */

/* Runs of bit patterns sharing an fp32 exponent, per 16-bit dtype (0 = F16, 1 = BF16): a
 * sub-block's exponent histogram is sums over contiguous ranges of the pattern histogram. */
#define MAX_RUNS 1024
static struct {
    uint32_t lo[MAX_RUNS], hi[MAX_RUNS];
    uint8_t exp[MAX_RUNS];
    int n;
} runs16[2];

static void init_runs(int which, int code)
{
    int n = 0;
    for (uint32_t v = 0; v < VALUES16; v++) {
        int e = exponent(fp32_bits(v, code));
        if (n && runs16[which].exp[n - 1] == e && runs16[which].hi[n - 1] == v) {
            runs16[which].hi[n - 1] = v + 1;
            continue;
        }
        runs16[which].lo[n] = v;
        runs16[which].hi[n] = v + 1;
        runs16[which].exp[n] = (uint8_t)e;
        n++;
    }
    runs16[which].n = n;
}

/* Exponent totals of the pattern histogram so far. */
CLONES static void exponent_totals(const uint32_t *hist, int which, int64_t *totals)
{
    memset(totals, 0, EXP_BINS * sizeof *totals);
    for (int r = 0; r < runs16[which].n; r++) {
        uint32_t sum = 0; /* at most one block's elements */
        for (uint32_t v = runs16[which].lo[r]; v < runs16[which].hi[r]; v++)
            sum += hist[v];
        totals[runs16[which].exp[r]] += sum;
    }
}

static void pass16(const uint16_t *data, int code, Py_ssize_t n, const limits_t *lim,
                   const uint8_t *pair_table, long tail, int64_t *sub_hists, int32_t *cand,
                   Py_ssize_t *n_cand, state_t *st, uint32_t *hist, int64_t *huge_total)
{
    uint8_t flag[CHUNK + 8];
    int64_t before[EXP_BINS], after[EXP_BINS];
    const int which = code == CODE_BF16;
    Py_ssize_t nc = 0;
    memset(hist, 0, VALUES16 * sizeof *hist);
    unsigned cls_tail = tail >= 0 ? classes((uint32_t)tail, 2) : 0;
    memset(before, 0, sizeof before);
    for (Py_ssize_t s0 = 0; s0 < n; s0 += lim->sub_block) {
        Py_ssize_t s1 = s0 + lim->sub_block < n ? s0 + lim->sub_block : n;
        for (Py_ssize_t c0 = s0; c0 < s1; c0 += CHUNK) {
            int c = (int)(s1 - c0 < CHUNK ? s1 - c0 : CHUNK);
            const uint16_t *raw = data + c0;
            flags16(raw, c, c0 + c < n ? raw[c] : (tail >= 0 ? (uint32_t)tail : 0), flag);
            for (int i = 0; i < c; i++)
                hist[raw[i]]++;
            candidates(data, code, n, c0, c, flag, cls_tail, pair_table, cand, &nc);
        }
        exponent_totals(hist, which, after);
        int64_t *row = sub_hists + (s0 / lim->sub_block) * EXP_BINS;
        for (int b = 0; b < EXP_BINS; b++) {
            row[b] = after[b] - before[b];
            before[b] = after[b];
        }
    }
    /* Everything else from the patterns' counts, once per block. */
    int32_t kmin = INT32_MAX, kmax = INT32_MIN;
    int64_t finite = 0;
    for (uint32_t v = 0; v < VALUES16; v++) {
        int64_t count = hist[v];
        if (!count)
            continue;
        uint32_t u = fp32_bits(v, code);
        if (exponent(u) == 0xFF) {
            if (u & 0x7FFFFFu)
                st->n_nan += count;
            else if (u >> 31)
                st->n_neginf += count;
            else
                st->n_posinf += count;
            continue;
        }
        finite += count;
        st->tz[trailing(u)] += count;
        if (!(u << 1))
            st->n_zero += count;
        if ((u & 0x7FFFFFFFu) > lim->huge)
            *huge_total += count;
        int32_t k = sortable(u);
        kmin = k < kmin ? k : kmin;
        kmax = k > kmax ? k : kmax;
    }
    st->any_finite = finite > 0;
    st->min = finite ? unsortable(kmin) : 0.0f;
    st->max = finite ? unsortable(kmax) : 0.0f;
    *n_cand = nc;
}

/* ---- W5 field check of the candidates --------------------------------------------------------
 * The same test as lowbits.headers_at's vectorised stage: for each candidate element, stream
 * and byte where the two bytes of a magic start, the bytes at CHECK_OFFSETS of that stream must
 * fit the magic's fixed fields. Survivors go back to Python for the exact validation. */

#define KIND_ELF 1
#define KIND_PE 2
#define KIND_ZIP 4
#define KIND_SHEBANG 8
static uint8_t first_kind[256], second_kind[256];
static const int check_offsets[9] = {0, 1, 2, 3, 4, 5, 6, 0x3E, 0x3F};

typedef struct {
    const void *data, *tail;
    int code;
    Py_ssize_t n, tail_n;
} source_t;

/* Byte `col` of element `elem` of the block followed by its tail; -1 past the tail. */
static inline int byte_at(const source_t *src, Py_ssize_t elem, int col)
{
    if (elem < src->n)
        return (int)((raw_bits(src->data, src->code, elem) >> (8 * col)) & 0xFFu);
    elem -= src->n;
    if (elem < src->tail_n)
        return (int)((raw_bits(src->tail, src->code, elem) >> (8 * col)) & 0xFFu);
    return -1;
}

static int fields_fit(int kind, const int *b)
{
    switch (kind) {
    case KIND_ELF:
        return b[2] == 'L' && b[3] == 'F' && (b[4] == 1 || b[4] == 2) && (b[5] == 1 || b[5] == 2) && b[6] == 1;
    case KIND_ZIP:
        return b[2] == 3 && b[3] == 4 && b[5] == 0;
    case KIND_SHEBANG:
        return b[2] == '/';
    default: /* PE: e_lfanew <= 0x1000 means its two high bytes are zero */
        return b[7] == 0 && b[8] == 0;
    }
}

/* Writes (element, byte, stream, magic rank) per survivor; -1 if more than `room` survive (the
 * caller then runs the NumPy stage on the candidates, whose caps decide where to stop). */
static Py_ssize_t field_check(const source_t *src, const int32_t *cand, Py_ssize_t n_cand,
                              const uint8_t *streams, int n_streams, int32_t *out, Py_ssize_t room)
{
    Py_ssize_t k = 0;
    for (Py_ssize_t c = 0; c < n_cand; c++) {
        Py_ssize_t elem = cand[c];
        for (int sid = 0; sid < n_streams; sid++) {
            int w = streams[4 * sid];
            const uint8_t *cols = streams + 4 * sid + 1;
            for (int j = 0; j < w; j++) {
                int second = byte_at(src, elem + (j + 1) / w, cols[(j + 1) % w]);
                int kind = first_kind[byte_at(src, elem, cols[j])] & (second < 0 ? 0 : second_kind[second]);
                if (!kind)
                    continue;
                int b[9];
                for (int o = 0; o < 9; o++) {
                    Py_ssize_t pos = elem * w + j + check_offsets[o];
                    b[o] = byte_at(src, pos / w, cols[pos % w]);
                }
                if (!fields_fit(kind, b))
                    continue;
                if (k >= room)
                    return -1;
                out[4 * k] = (int32_t)elem;
                out[4 * k + 1] = j;
                out[4 * k + 2] = sid;
                out[4 * k + 3] = kind == KIND_ELF ? 0 : kind == KIND_PE ? 1 : kind == KIND_ZIP ? 2 : 3;
                k++;
            }
        }
    }
    return k;
}

static void init_tables(void)
{
    static const char first[] = {0x7F, 'M', 'P', '#'}, second[] = {'E', 'Z', 'K', '!'};
    for (int i = 0; i < 4; i++) {
        byte_class[(uint8_t)first[i]] |= 1;
        byte_class[(uint8_t)second[i]] |= 2;
        first_kind[(uint8_t)first[i]] = (uint8_t)(1 << i);
        second_kind[(uint8_t)second[i]] = (uint8_t)(1 << i);
    }
    init_runs(0, CODE_F16);
    init_runs(1, CODE_BF16);
}

/* ---- Index lists, by a scan from the block's start that stops once they are complete -------- */

static void index_lists(const void *data, int code, Py_ssize_t n, int64_t start, const limits_t *lim,
                        state_t *st, int64_t nonfinite_total, int64_t huge_total)
{
    int target[TZ_MAX_K + 1] = {0};
    int64_t below = 0, remaining = 0;
    for (int k = 1; k <= TZ_MAX_K; k++) {
        below += st->tz[k - 1];
        if (k >= lim->min_k)
            target[k] = below < lim->kept ? (int)below : lim->kept;
        remaining += target[k] - st->n_low_tz[k];
    }
    int nonfinite_target = nonfinite_total < lim->kept ? (int)nonfinite_total : lim->kept;
    int huge_target = huge_total < lim->kept ? (int)huge_total : lim->kept;
    remaining += nonfinite_target - st->n_nonfinite + huge_target - st->n_huge;
    for (Py_ssize_t i = 0; i < n && remaining > 0; i++) {
        uint32_t u = fp32_bits(raw_bits(data, code, i), code);
        if (exponent(u) == 0xFF) {
            if (st->n_nonfinite < nonfinite_target) {
                st->nonfinite[st->n_nonfinite++] = start + i;
                remaining--;
            }
            continue;
        }
        if ((u & 0x7FFFFFFFu) > lim->huge && st->n_huge < huge_target) {
            st->huge[st->n_huge++] = start + i;
            remaining--;
        }
        for (int k = trailing(u) + 1; k <= TZ_MAX_K; k++)
            if (st->n_low_tz[k] < target[k]) {
                st->low_tz[k][st->n_low_tz[k]++] = start + i;
                remaining--;
            }
    }
}

static PyObject *index_tuple(const int64_t *v, int n)
{
    PyObject *t = PyTuple_New(n);
    if (!t)
        return NULL;
    for (int i = 0; i < n; i++) {
        PyObject *x = PyLong_FromLongLong(v[i]);
        if (!x) {
            Py_DECREF(t);
            return NULL;
        }
        PyTuple_SET_ITEM(t, i, x);
    }
    return t;
}

PyDoc_STRVAR(default_pass_doc,
"default_pass(data, code, start, limits, pair_table, tail, sub_hists, cand, streams, survivors)\n\n"
"One block's default pass. data: the block's on-disk elements (code 0 F32, 1 F16, 2 BF16);\n"
"start: tensor-wide index of its first element; limits: (sub_block, kept, min_k, huge_bits);\n"
"pair_table: 512 bytes, nonzero where (first bits | second bits << 3 | next second bits << 6)\n"
"is a candidate; tail: the elements after the block (may be empty); sub_hists: writable int64\n"
"buffer of ceil(n / sub_block) * 256; cand: writable int32 buffer of n, where the block-relative\n"
"candidate elements are written in ascending order; streams: 4 bytes per W5 stream (width,\n"
"columns); survivors: writable int32 buffer of 4-tuples (element, byte, stream, magic rank).\n"
"Returns (n_nan, n_posinf, n_neginf, n_zero, tz_hist, min, max, first_nonfinite, first_huge,\n"
"first_low_tz, n_cand, n_survivors); min/max are None when no element is finite, n_survivors\n"
"is -1 when they did not fit.");

static PyObject *default_pass(PyObject *Py_UNUSED(self), PyObject *args)
{
    Py_buffer data, table, hists, cands, tail_data, streams, surv;
    int code;
    long long start;
    long tail = -1;
    Py_ssize_t sub_block;
    int kept, min_k;
    unsigned long huge;
    PyObject *result = NULL;
    if (!PyArg_ParseTuple(args, "y*iL(niik)y*y*w*w*y*w*", &data, &code, &start, &sub_block, &kept, &min_k,
                          &huge, &table, &tail_data, &hists, &cands, &streams, &surv))
        return NULL;
    Py_ssize_t item = code == CODE_F32 ? 4 : 2;
    Py_ssize_t n = data.len / item;
    state_t *st = NULL;
    if (code < CODE_F32 || code > CODE_BF16 || data.len % item) {
        PyErr_SetString(PyExc_ValueError, "data is not whole elements of a supported dtype");
        goto done;
    }
    if (sub_block <= 0 || kept < 0 || kept > 64 || min_k < 1 || min_k > TZ_MAX_K || table.len != 512 ||
        tail_data.len % item || streams.len % 4 || surv.len % 16) {
        PyErr_SetString(PyExc_ValueError, "bad limits or pair table");
        goto done;
    }
    if (hists.len < (Py_ssize_t)(((n + sub_block - 1) / sub_block) * EXP_BINS * sizeof(int64_t)) ||
        cands.len < (Py_ssize_t)(n * sizeof(int32_t)) || n > INT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "output buffers too small");
        goto done;
    }
    st = PyMem_Calloc(1, sizeof *st);
    if (!st) {
        PyErr_NoMemory();
        goto done;
    }
    /* Per thread, kept across calls: a fresh 256 KiB histogram per block cost page faults. */
    static __thread void *work32, *work16;
    if (!work32)
        work32 = PyMem_RawMalloc(sizeof(hists32_t));
    if (!work16)
        work16 = PyMem_RawMalloc(VALUES16 * sizeof(uint32_t));
    void *work = code == CODE_F32 ? work32 : work16;
    if (!work) {
        PyErr_NoMemory();
        goto done;
    }
    limits_t lim = {sub_block, kept, min_k, (uint32_t)huge};
    Py_ssize_t n_cand = 0;
    for (Py_ssize_t i = 0; i < streams.len; i += 4) {
        const uint8_t *st4 = (const uint8_t *)streams.buf + i;
        if (st4[0] < 1 || st4[0] > 3 || st4[1] >= item || st4[2] >= item || st4[3] >= item) {
            PyErr_SetString(PyExc_ValueError, "bad stream table");
            goto done;
        }
    }
    if (tail_data.len)
        tail = (long)raw_bits(tail_data.buf, code, 0);
    source_t src = {data.buf, tail_data.buf, code, n, tail_data.len / item};
    Py_ssize_t n_surv = 0;
    Py_BEGIN_ALLOW_THREADS
    int64_t huge_total = 0;
    if (code == CODE_F32)
        pass32(data.buf, n, start, &lim, table.buf, tail, hists.buf, cands.buf, &n_cand, st, work);
    else
        pass16(data.buf, code, n, &lim, table.buf, tail, hists.buf, cands.buf, &n_cand, st, work, &huge_total);
    /* F32 listed its non-finite and huge elements chunk by chunk; the 16-bit pass only counted. */
    if (code == CODE_F32)
        index_lists(data.buf, code, n, start, &lim, st, st->n_nonfinite, st->n_huge);
    else
        index_lists(data.buf, code, n, start, &lim, st, st->n_nan + st->n_posinf + st->n_neginf, huge_total);
    n_surv = field_check(&src, cands.buf, n_cand, streams.buf, (int)(streams.len / 4), surv.buf, surv.len / 16);
    Py_END_ALLOW_THREADS

    PyObject *lows = PyTuple_New(TZ_MAX_K + 1);
    if (!lows)
        goto done;
    for (int k = 0; k <= TZ_MAX_K; k++) {
        PyObject *t = index_tuple(st->low_tz[k], st->n_low_tz[k]);
        if (!t) {
            Py_DECREF(lows);
            goto done;
        }
        PyTuple_SET_ITEM(lows, k, t);
    }
    PyObject *tz = PyTuple_New(TZ_BINS);
    if (!tz) {
        Py_DECREF(lows);
        goto done;
    }
    for (int b = 0; b < TZ_BINS; b++)
        PyTuple_SET_ITEM(tz, b, PyLong_FromLongLong(st->tz[b]));
    PyObject *nonfinite = index_tuple(st->nonfinite, st->n_nonfinite);
    PyObject *hugeidx = index_tuple(st->huge, st->n_huge);
    PyObject *mn = st->any_finite ? PyFloat_FromDouble(st->min) : Py_NewRef(Py_None);
    PyObject *mx = st->any_finite ? PyFloat_FromDouble(st->max) : Py_NewRef(Py_None);
    if (nonfinite && hugeidx && mn && mx)
        result = Py_BuildValue("LLLLNNNNNNnn", (long long)st->n_nan, (long long)st->n_posinf,
                               (long long)st->n_neginf, (long long)st->n_zero, tz, mn, mx, nonfinite,
                               hugeidx, lows, n_cand, n_surv);
    else {
        Py_XDECREF(nonfinite);
        Py_XDECREF(hugeidx);
        Py_XDECREF(mn);
        Py_XDECREF(mx);
        Py_DECREF(tz);
        Py_DECREF(lows);
    }
done:
    PyMem_Free(st);
    PyBuffer_Release(&data);
    PyBuffer_Release(&table);
    PyBuffer_Release(&hists);
    PyBuffer_Release(&cands);
    PyBuffer_Release(&tail_data);
    PyBuffer_Release(&streams);
    PyBuffer_Release(&surv);
    return result;
}

static PyMethodDef methods[] = {
    {"default_pass", default_pass, METH_VARARGS, default_pass_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_blockpass",
    "The default weight pass over one block in C (see blocks.py for the NumPy reference).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__blockpass(void)
{
    init_tables();
    return PyModule_Create(&module);
}
