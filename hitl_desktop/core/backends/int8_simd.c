/* y[m, n] = bf16(scale[n] * sx[m] * sum_k q[m, k] * w[n, k]): int8 weights (one scale per
 * output channel) times the bf16 activations quantized to int16 per row (q = round(x / sx),
 * sx = max|x| / 32767: 15 bits against the row's largest, where bf16 keeps 8 per value), the
 * integer products exact (AVX-512 VNNI's vpdpwssd: 32 multiply-adds an instruction, twice a
 * float32 FMA's, which is what bounds the K <= 9 rows of a decoding step on the CPU), bf16 out
 * (rounded to nearest even).
 *
 * Built by hitl_desktop/core/backends/int8_simd.py with the system C compiler (ctypes, no
 * Python or torch headers); it runs where the CPU has AVX-512 VNNI (hitl_int8_isa).
 *
 * Every output is computed alone, by the same sequence of operations whatever the number of
 * rows, the other rows, the tile or the thread that computes it: a candidate's numbers do
 * not depend on the others or on the thread count. The weights are read from memory once
 * per call (the output channels in tiles that stay in the cache while every row block of
 * the activations passes over them).
 *
 * Threads: OpenMP, the same libgomp.so.1 torch has loaded (one pool, torch's wait policy),
 * as many as the caller says (torch.get_num_threads()).
 */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define TILE 64 /* output channels per task: 64 x 2048 int8 = 128 KiB, in L2 */

static inline float bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static inline uint16_t f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* NaN: quiet */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

/* -- AVX-512 VNNI -------------------------------------------------------------------- */

/* Products summed in int32 lanes per CHUNK: a lane holds CHUNK / 16 products of at most
 * 127 x 32767 (2^31 / 4 with room), four lanes still fit one int32, and the rest is summed
 * in int64: every dot product is exact, so its value does not depend on the order it was
 * summed in (the 1- and 4-channel kernels below agree bit for bit). */
#define CHUNK 2048

/* The exact sum of a vector of 16 int32 lanes. */
__attribute__((target("avx512f,avx512bw,avx512vnni"))) static inline int64_t hsum1(__m512i a) {
    __m512i lo = _mm512_cvtepi32_epi64(_mm512_castsi512_si256(a));
    __m512i hi = _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(a, 1));
    return _mm512_reduce_add_epi64(_mm512_add_epi64(lo, hi));
}

/* The exact sums [a[0], a[1], a[2], a[3]] of four vectors of 16 int32 lanes (CHUNK-bounded). */
__attribute__((target("avx512f,avx512bw,avx512vnni"))) static inline void hsum4(const __m512i *a, int64_t *out) {
    __m512i t0 = _mm512_add_epi32(_mm512_unpacklo_epi32(a[0], a[1]), _mm512_unpackhi_epi32(a[0], a[1]));
    __m512i t1 = _mm512_add_epi32(_mm512_unpacklo_epi32(a[2], a[3]), _mm512_unpackhi_epi32(a[2], a[3]));
    __m512i u = _mm512_add_epi32(_mm512_unpacklo_epi64(t0, t1), _mm512_unpackhi_epi64(t0, t1));
    /* each 128-bit lane of u: the partial sums [a0, a1, a2, a3] of four lanes each (exact) */
    __m512i lo = _mm512_cvtepi32_epi64(_mm512_castsi512_si256(u));      /* lanes 0, 1 */
    __m512i hi = _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(u, 1)); /* lanes 2, 3 */
    __m512i v = _mm512_add_epi64(lo, hi);                                /* [a0..a3] x 2 */
    __m256i w = _mm256_add_epi64(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1));
    _mm256_storeu_si256((__m256i *)out, w);
}

/* R rows (1..4) of int16 activations against one int8 output channel: the exact dot products. */
#define DOT1(R)                                                                               \
    __attribute__((target("avx512f,avx512bw,avx512vnni"))) static void dot_##R(               \
        const int16_t *x, int64_t ldx, const int8_t *w, int64_t k, int64_t *out) {             \
        for (int r = 0; r < R; r++) out[r] = 0;                                               \
        for (int64_t c0 = 0; c0 < k; c0 += CHUNK) {                                           \
            int64_t c1 = c0 + CHUNK < k ? c0 + CHUNK : k, i = c0;                             \
            __m512i acc[R];                                                                   \
            for (int r = 0; r < R; r++) acc[r] = _mm512_setzero_si512();                      \
            for (; i + 32 <= c1; i += 32) {                                                   \
                __m512i wv = _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)(w + i))); \
                for (int r = 0; r < R; r++)                                                   \
                    acc[r] = _mm512_dpwssd_epi32(                                             \
                        acc[r], _mm512_loadu_si512((const void *)(x + r * ldx + i)), wv);     \
            }                                                                                 \
            for (int r = 0; r < R; r++) {                                                     \
                int64_t s = hsum1(acc[r]);                                                    \
                for (int64_t j = i; j < c1; j++) s += (int64_t)w[j] * x[r * ldx + j];        \
                out[r] += s;                                                                  \
            }                                                                                 \
        }                                                                                     \
    }
DOT1(1)
DOT1(2)
DOT1(3)
DOT1(4)

/* R rows against 4 output channels at once (each row's activations loaded once for the four,
 * the next channels' weights prefetched: the table streams from memory). */
#define DOT4(R)                                                                               \
    __attribute__((target("avx512f,avx512bw,avx512vnni"))) static void dot4_##R(              \
        const int16_t *x, int64_t ldx, const int8_t *w, int64_t ldw, int64_t k, int64_t *out) { \
        for (int r = 0; r < 4 * R; r++) out[r] = 0;                                           \
        for (int64_t c0 = 0; c0 < k; c0 += CHUNK) {                                           \
            int64_t c1 = c0 + CHUNK < k ? c0 + CHUNK : k, i = c0;                             \
            __m512i acc[R][4];                                                                \
            for (int r = 0; r < R; r++)                                                       \
                for (int c = 0; c < 4; c++) acc[r][c] = _mm512_setzero_si512();               \
            for (; i + 32 <= c1; i += 32) {                                                   \
                __m512i wv[4];                                                                \
                if (!(i & 63)) /* the next 4 channels' line (a hint: never faults) */         \
                    for (int c = 4; c < 8; c++) _mm_prefetch((const char *)(w + c * ldw + i), _MM_HINT_T0); \
                for (int c = 0; c < 4; c++)                                                   \
                    wv[c] = _mm512_cvtepi8_epi16(                                             \
                        _mm256_loadu_si256((const __m256i *)(w + c * ldw + i)));              \
                for (int r = 0; r < R; r++) {                                                 \
                    __m512i xv = _mm512_loadu_si512((const void *)(x + r * ldx + i));         \
                    for (int c = 0; c < 4; c++) acc[r][c] = _mm512_dpwssd_epi32(acc[r][c], xv, wv[c]); \
                }                                                                             \
            }                                                                                 \
            for (int r = 0; r < R; r++) {                                                     \
                int64_t s[4];                                                                 \
                hsum4(acc[r], s);                                                             \
                for (int c = 0; c < 4; c++) {                                                 \
                    for (int64_t j = i; j < c1; j++) s[c] += (int64_t)w[c * ldw + j] * x[r * ldx + j]; \
                    out[4 * r + c] += s[c];                                                   \
                }                                                                             \
            }                                                                                 \
        }                                                                                     \
    }
DOT4(1)
DOT4(2)
DOT4(3)
DOT4(4)

typedef void (*dot_fn)(const int16_t *, int64_t, const int8_t *, int64_t, int64_t *);
typedef void (*dot4_fn)(const int16_t *, int64_t, const int8_t *, int64_t, int64_t, int64_t *);

/* 1: AVX-512 with VNNI (this kernel runs), 0: not (the caller uses another kernel). */
int hitl_int8_isa(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vnni");
}

/* A row of x as int16, symmetric: q = round(x / s), s = max|x| / 32767 (0 for a zero row;
 * NaN for a row with a NaN or an infinity, whose outputs are then NaN, as a float product's). */
static float quantize_row(const uint16_t *x, int64_t k, int16_t *q) {
    float amax = 0.0f;
    int finite = 1;
    for (int64_t j = 0; j < k; j++) {
        float v = fabsf(bf16_to_f32(x[j]));
        finite &= isfinite(v) != 0;
        if (v > amax) amax = v;
    }
    if (!finite || amax == 0.0f) {
        for (int64_t j = 0; j < k; j++) q[j] = 0;
        return finite ? 0.0f : NAN;
    }
    float inv = 32767.0f / amax;
    for (int64_t j = 0; j < k; j++) {
        float v = nearbyintf(bf16_to_f32(x[j]) * inv);
        q[j] = (int16_t)(v > 32767.0f ? 32767.0f : (v < -32767.0f ? -32767.0f : v));
    }
    return amax / 32767.0f;
}

/* x: bf16 [m, k] (row stride ldx elements); w: int8 [n, k] (row stride ldw); scale: bf16 [n];
 * y: bf16 [m, n] (row stride ldy). Returns 0, or -1 when out of memory (nothing written). */
int hitl_int8_mm(const uint16_t *x, int64_t m, int64_t k, int64_t ldx, const int8_t *w,
                 int64_t n, int64_t ldw, const uint16_t *scale, uint16_t *y, int64_t ldy,
                 int threads) {
    if (m <= 0 || n <= 0) return 0;
    int64_t kp = (k + 31) / 32 * 32; /* each int16 row 64-byte aligned */
    int16_t *xq = (int16_t *)aligned_alloc(64, sizeof(int16_t) * (size_t)(m * kp) + 64);
    float *sx = (float *)malloc(sizeof(float) * (size_t)m);
    if (!xq || !sx) {
        free(xq), free(sx);
        return -1;
    }
    for (int64_t r = 0; r < m; r++) sx[r] = quantize_row(x + r * ldx, k, xq + r * kp);
    static const dot_fn dots[5] = {0, dot_1, dot_2, dot_3, dot_4};
    static const dot4_fn dots4[5] = {0, dot4_1, dot4_2, dot4_3, dot4_4};
    int64_t tiles = (n + TILE - 1) / TILE;
    if (threads < 1) threads = 1;
    if (threads > tiles) threads = (int)tiles;
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t t = 0; t < tiles; t++) {
        int64_t n0 = t * TILE, n1 = n0 + TILE < n ? n0 + TILE : n;
        int64_t out[16];
        for (int64_t r0 = 0; r0 < m; r0 += 4) {
            int rows = (int)(m - r0 < 4 ? m - r0 : 4);
            int64_t c = n0;
            for (; c + 4 <= n1; c += 4) {
                dots4[rows](xq + r0 * kp, kp, w + c * ldw, ldw, k, out);
                for (int r = 0; r < rows; r++)
                    for (int j = 0; j < 4; j++)
                        y[(r0 + r) * ldy + c + j] =
                            f32_to_bf16((float)out[4 * r + j] * (sx[r0 + r] * bf16_to_f32(scale[c + j])));
            }
            for (; c < n1; c++) {
                dots[rows](xq + r0 * kp, kp, w + c * ldw, k, out);
                for (int r = 0; r < rows; r++)
                    y[(r0 + r) * ldy + c] = f32_to_bf16((float)out[r] * (sx[r0 + r] * bf16_to_f32(scale[c])));
            }
        }
    }
    free(xq), free(sx);
    return 0;
}

/* -- sampling: the tokens a nucleus is drawn from ----------------------------------------- */

/* For each row r of logits [rows, vocab] (row stride ld): the ids whose logit is >= threshold[r],
 * in vocabulary order, at most cap of them written to ids[r * cap ...] (their logits to
 * vals[r * cap ...]); counts[r] = how many there are (more than cap: the caller looks further). */
__attribute__((target("avx512f"))) void hitl_above(const float *logits, int64_t rows, int64_t vocab,
                                                    int64_t ld, const float *threshold, int64_t cap,
                                                    int64_t *ids, float *vals, int64_t *counts,
                                                    int threads) {
    if (threads < 1) threads = 1;
    if (threads > rows) threads = (int)(rows > 0 ? rows : 1);
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t r = 0; r < rows; r++) {
        const float *row = logits + r * ld;
        float t = threshold[r];
        __m512 tv = _mm512_set1_ps(t);
        int64_t found = 0, j = 0;
        for (; j + 16 <= vocab; j += 16) {
            __mmask16 hit = _mm512_cmp_ps_mask(_mm512_loadu_ps(row + j), tv, _CMP_GE_OQ);
            while (hit) {
                int b = __builtin_ctz(hit);
                hit &= (__mmask16)(hit - 1);
                if (found < cap) ids[r * cap + found] = j + b, vals[r * cap + found] = row[j + b];
                found++;
            }
        }
        for (; j < vocab; j++)
            if (row[j] >= t) {
                if (found < cap) ids[r * cap + found] = j, vals[r * cap + found] = row[j];
                found++;
            }
        counts[r] = found;
    }
}

/* -- RMSNorm: the lean step's norms in one pass ------------------------------------------- */

/* y[r, g, :] = bf16(x[r, g, :] * (1 / sqrt(mean(x[r, g, :]^2) + eps)) * scale[g, :]) for rows r,
 * groups g (each a contiguous vector of d bf16 values; row stride ldx), in float32; y is
 * contiguous [rows, groups, d]. Gemma's norms: scale = 1 + weight (one group), or the query
 * and key heads' own (groups = heads). */
void hitl_rms_norm(const uint16_t *x, int64_t rows, int64_t groups, int64_t d, int64_t ldx,
                   const float *scale, float eps, uint16_t *y) {
    for (int64_t r = 0; r < rows; r++)
        for (int64_t g = 0; g < groups; g++) {
            const uint16_t *v = x + r * ldx + g * d;
            uint16_t *o = y + (r * groups + g) * d;
            const float *s = scale + g * d;
            float acc[16] = {0};
            int64_t j = 0;
            for (; j + 16 <= d; j += 16)
                for (int l = 0; l < 16; l++) {
                    float f = bf16_to_f32(v[j + l]);
                    acc[l] += f * f;
                }
            for (; j < d; j++) {
                float f = bf16_to_f32(v[j]);
                acc[j & 15] += f * f;
            }
            float sum = 0.0f;
            for (int l = 0; l < 16; l++) sum += acc[l];
            float inv = 1.0f / sqrtf(sum / (float)d + eps);
            for (j = 0; j < d; j++) o[j] = f32_to_bf16(bf16_to_f32(v[j]) * inv * s[j]);
        }
}
