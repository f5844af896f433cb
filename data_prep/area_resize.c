/* Area-averaging shrink of 8-bit images, bit for bit what cv::resize(INTER_AREA) computes.
 *
 * Data prep (Sec. 3.1 of the paper: training images rescaled to smallest side S) shrinks
 * every image with area averaging, as the patched Caffe DataTransformer does with
 * cv::resize, so that a stored S and a jittered S are the same image. For a non-integer
 * ratio (375 -> 256, the common case) OpenCV's resizeArea is scalar code that recomputes
 * the horizontal pass of a source row once for every destination row it touches and keeps
 * its running sums in memory; it costs more than decoding the JPEG. This file does the same
 * arithmetic in the same order (so the result is identical, not merely close) with each
 * source row's horizontal pass done once and the sums kept in registers.
 *
 * What "the same arithmetic" is (OpenCV 4.x modules/imgproc/src/resize.cpp,
 * computeResizeAreaTab and ResizeArea_Invoker): per axis, weights (float) are the overlap of
 * source cell and destination cell over the cell width, slivers under 1e-3 dropped; the
 * horizontal sum per channel is 0 + s0*a0 + s1*a1 + ... in source order, in float; the
 * vertical sum is b0*h0 + b1*h1 + ... in source order, in float; the result is rounded to
 * nearest, ties to even (cvRound), and saturated. No fused multiply-add may be used, hence
 * -ffp-contract=off when compiling.
 *
 * Integer ratios (OpenCV's resizeAreaFast, integer arithmetic) and enlarging are not
 * handled here: the caller uses cv::resize for them.
 *
 * Vector code keeps that arithmetic per lane: the horizontal pass runs 4 (SSE2) or 8 (AVX2,
 * chosen at run time) source rows as the lanes of one vector, and the vertical pass 4 or 8
 * destination pixels; a plain C path does one row and one pixel at a time. All three give
 * the same bytes (the tests run each against cv::resize).
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef __x86_64__
#include <immintrin.h> /* SSE2 is part of x86-64; AVX2 is used where the CPU has it */
#endif

typedef struct {
    int di;      /* destination index (x times channels for the horizontal table) */
    int si;      /* source index, likewise */
    float alpha; /* weight */
} Tap;

/* OpenCV's computeResizeAreaTab: the taps of every destination cell, in source order. */
static int area_taps(int ssize, int dsize, int cn, double scale, Tap *tab) {
    int k = 0;
    for (int dx = 0; dx < dsize; dx++) {
        double fsx1 = dx * scale;
        double fsx2 = fsx1 + scale;
        double cell = scale < ssize - fsx1 ? scale : ssize - fsx1;
        int sx1 = (int)ceil(fsx1), sx2 = (int)floor(fsx2);
        if (sx2 > ssize - 1) sx2 = ssize - 1;
        if (sx1 > sx2) sx1 = sx2;
        if (sx1 - fsx1 > 1e-3) {
            tab[k].di = dx * cn;
            tab[k].si = (sx1 - 1) * cn;
            tab[k++].alpha = (float)((sx1 - fsx1) / cell);
        }
        for (int sx = sx1; sx < sx2; sx++) {
            tab[k].di = dx * cn;
            tab[k].si = sx * cn;
            tab[k++].alpha = (float)(1.0 / cell);
        }
        if (fsx2 - sx2 > 1e-3) {
            double part = fsx2 - sx2 < 1.0 ? fsx2 - sx2 : 1.0;
            if (part > cell) part = cell;
            tab[k].di = dx * cn;
            tab[k].si = sx2 * cn;
            tab[k++].alpha = (float)(part / cell);
        }
    }
    return k;
}

/* first[d] .. first[d + 1] - 1: the taps of destination cell d (the table is in d order). */
static void tap_ranges(const Tap *tab, int ntaps, int dsize, int cn, int *first) {
    int k = 0;
    for (int d = 0; d < dsize; d++) {
        first[d] = k;
        while (k < ntaps && tab[k].di == d * cn) k++;
    }
    first[dsize] = k;
}

/* The taps of every element e = dx * cn + c of a destination row as a dense table of ntap
 * (source byte offset, weight) pairs; a cell with fewer taps is padded with weight 0 on its
 * last source offset (a valid one). */
static void element_taps(const Tap *tab, int ntaps, int dw, int cn, int ntap, int *eidx, float *ew) {
    int k = 0;
    for (int dx = 0; dx < dw; dx++) {
        int first = k;
        while (k < ntaps && tab[k].di == dx * cn) k++;
        for (int c = 0; c < cn; c++) {
            int *ix = eidx + (dx * cn + c) * ntap;
            float *w = ew + (dx * cn + c) * ntap;
            for (int n = 0; n < ntap; n++) {
                if (first + n < k) {
                    ix[n] = tab[first + n].si + c;
                    w[n] = tab[first + n].alpha;
                } else {
                    ix[n] = n ? ix[n - 1] : c;
                    w[n] = 0.f;
                }
            }
        }
    }
}

static int most_taps(const Tap *tab, int ntaps) {
    int most = 0;
    for (int k = 0; k < ntaps;) {
        int j = k;
        while (j < ntaps && tab[j].di == tab[k].di) j++;
        if (j - k > most) most = j - k;
        k = j;
    }
    return most;
}

static inline uint8_t round_saturate(float v) {
    long r = lrintf(v); /* ties to even under the default rounding mode, as cvRound */
    return (uint8_t)(r < 0 ? 0 : r > 255 ? 255 : r);
}

/* ---------------------------------------------------------------- horizontal pass
 * Source rows y0 .. y0 + n - 1 (n <= the lane count) into rows[q * rowlen + e], e = dx * cn + c.
 * Element e's taps are eidx[e * ntap + k] (byte offsets in a row) with weights ew[...]; a
 * column with fewer taps is padded with weight 0, which adds +0 to a non-negative sum and so
 * changes nothing. `lanes` is scratch for (lane count) x rowbytes floats: lanes[L * j + q] is
 * row q's byte j. Each variant is inlined with a constant ntap (see rows_pass) so that the
 * compiler unrolls the tap loop. */

static inline __attribute__((always_inline)) void rows_pass_1(const uint8_t *src, long sstride, int y0, int n,
                                                             const int *eidx, const float *ew, int ntap,
                                                             int rowlen, float *rows) {
    for (int q = 0; q < n; q++) {
        const uint8_t *S = src + (long)(y0 + q) * sstride;
        float *out = rows + (size_t)q * rowlen;
        for (int e = 0; e < rowlen; e++) {
            float a = 0.f;
            for (int k = 0; k < ntap; k++) a = a + S[eidx[e * ntap + k]] * ew[e * ntap + k];
            out[e] = a;
        }
    }
}

#ifdef __x86_64__
/* Element e of four rows at once: lane q = 0 + p0 * w0 + p1 * w1 + ... for row q. */
static inline __attribute__((always_inline)) __m128 element_4(const float *lanes, const int *eidx, const float *ew,
                                                             int ntap, int e) {
    const int *ix = eidx + e * ntap;
    const float *w = ew + e * ntap;
    __m128 acc = _mm_setzero_ps();
    for (int k = 0; k < ntap; k++)
        acc = _mm_add_ps(acc, _mm_mul_ps(_mm_loadu_ps(lanes + 4 * ix[k]), _mm_set1_ps(w[k])));
    return acc;
}

static inline __attribute__((always_inline)) void rows_pass_4(const uint8_t *src, long sstride, int y0, int n,
                                                             int rowbytes, const int *eidx, const float *ew,
                                                             int ntap, int rowlen, float *lanes, float *rows) {
    const uint8_t *r[4];
    for (int q = 0; q < 4; q++) r[q] = src + (long)(y0 + (q < n ? q : n - 1)) * sstride;
    int j = 0;
    const __m128i zero = _mm_setzero_si128();
    for (; j + 16 <= rowbytes; j += 16) {
        __m128i a0 = _mm_loadu_si128((const __m128i *)(r[0] + j));
        __m128i a1 = _mm_loadu_si128((const __m128i *)(r[1] + j));
        __m128i a2 = _mm_loadu_si128((const __m128i *)(r[2] + j));
        __m128i a3 = _mm_loadu_si128((const __m128i *)(r[3] + j));
        __m128i p01[2] = {_mm_unpacklo_epi8(a0, a1), _mm_unpackhi_epi8(a0, a1)};
        __m128i p23[2] = {_mm_unpacklo_epi8(a2, a3), _mm_unpackhi_epi8(a2, a3)};
        for (int h = 0; h < 2; h++) {
            __m128i quad[2] = {_mm_unpacklo_epi16(p01[h], p23[h]), _mm_unpackhi_epi16(p01[h], p23[h])};
            for (int g = 0; g < 2; g++) {
                __m128i w16[2] = {_mm_unpacklo_epi8(quad[g], zero), _mm_unpackhi_epi8(quad[g], zero)};
                float *out = lanes + 4 * (j + 8 * h + 4 * g);
                _mm_storeu_ps(out, _mm_cvtepi32_ps(_mm_unpacklo_epi16(w16[0], zero)));
                _mm_storeu_ps(out + 4, _mm_cvtepi32_ps(_mm_unpackhi_epi16(w16[0], zero)));
                _mm_storeu_ps(out + 8, _mm_cvtepi32_ps(_mm_unpacklo_epi16(w16[1], zero)));
                _mm_storeu_ps(out + 12, _mm_cvtepi32_ps(_mm_unpackhi_epi16(w16[1], zero)));
            }
        }
    }
    for (; j < rowbytes; j++)
        for (int q = 0; q < 4; q++) lanes[4 * j + q] = r[q][j];
    int e = 0;
    for (; e + 4 <= rowlen; e += 4) {
        __m128 v0 = element_4(lanes, eidx, ew, ntap, e), v1 = element_4(lanes, eidx, ew, ntap, e + 1);
        __m128 v2 = element_4(lanes, eidx, ew, ntap, e + 2), v3 = element_4(lanes, eidx, ew, ntap, e + 3);
        _MM_TRANSPOSE4_PS(v0, v1, v2, v3); /* now v<q> = row q's elements e .. e + 3 */
        float *out = rows + e;
        _mm_storeu_ps(out, v0);
        if (n > 1) _mm_storeu_ps(out + rowlen, v1);
        if (n > 2) _mm_storeu_ps(out + 2 * rowlen, v2);
        if (n > 3) _mm_storeu_ps(out + 3 * rowlen, v3);
    }
    for (; e < rowlen; e++) {
        float tmp[4];
        _mm_storeu_ps(tmp, element_4(lanes, eidx, ew, ntap, e));
        for (int q = 0; q < n; q++) rows[(size_t)q * rowlen + e] = tmp[q];
    }
}

#define AVX2 __attribute__((target("avx2")))

static inline __attribute__((always_inline)) AVX2 __m256 element_8(const float *lanes, const int *eidx,
                                                                  const float *ew, int ntap, int e) {
    const int *ix = eidx + e * ntap;
    const float *w = ew + e * ntap;
    __m256 acc = _mm256_setzero_ps();
    for (int k = 0; k < ntap; k++)
        acc = _mm256_add_ps(acc, _mm256_mul_ps(_mm256_loadu_ps(lanes + 8 * ix[k]), _mm256_set1_ps(w[k])));
    return acc;
}

/* Eight bytes (one column of eight rows) to eight floats. */
static inline __attribute__((always_inline)) AVX2 __m256 column_8(__m128i bytes) {
    return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(bytes));
}

/* Columns j .. j + 15 of eight rows to lanes[8 * j ..]: 8 rows x 16 bytes transposed into 16
 * columns of 8 bytes (pairs, quads, octets), each widened to 8 floats. */
static inline __attribute__((always_inline)) AVX2 void columns_8(const uint8_t *const *r, int j, float *lanes) {
    __m128i a[8], b[8], c[8], d[8];
    for (int q = 0; q < 8; q++) a[q] = _mm_loadu_si128((const __m128i *)(r[q] + j));
    for (int q = 0; q < 4; q++) {
        b[2 * q] = _mm_unpacklo_epi8(a[2 * q], a[2 * q + 1]);     /* columns 0-7, rows 2q, 2q+1 */
        b[2 * q + 1] = _mm_unpackhi_epi8(a[2 * q], a[2 * q + 1]); /* columns 8-15 */
    }
    for (int h = 0; h < 2; h++)       /* rows 0-3 (b[0..3]) and rows 4-7 (b[4..7]) */
        for (int g = 0; g < 2; g++) { /* columns 0-7 and 8-15 */
            c[4 * h + 2 * g] = _mm_unpacklo_epi16(b[4 * h + g], b[4 * h + 2 + g]);
            c[4 * h + 2 * g + 1] = _mm_unpackhi_epi16(b[4 * h + g], b[4 * h + 2 + g]);
        }
    for (int i = 0; i < 4; i++) { /* c[i]: columns 4i .. 4i+3 of rows 0-3; c[4 + i]: of rows 4-7 */
        d[2 * i] = _mm_unpacklo_epi32(c[i], c[4 + i]);
        d[2 * i + 1] = _mm_unpackhi_epi32(c[i], c[4 + i]);
    }
    for (int i = 0; i < 8; i++) { /* d[i]: columns 2i and 2i + 1, eight rows each */
        float *out = lanes + 8 * (j + 2 * i);
        _mm256_storeu_ps(out, column_8(d[i]));
        _mm256_storeu_ps(out + 8, column_8(_mm_unpackhi_epi64(d[i], d[i])));
    }
}

static inline __attribute__((always_inline)) AVX2 void rows_pass_8(const uint8_t *src, long sstride, int y0, int n,
                                                                  int rowbytes, const int *eidx, const float *ew,
                                                                  int ntap, int rowlen, float *lanes, float *rows) {
    const uint8_t *r[8];
    for (int q = 0; q < 8; q++) r[q] = src + (long)(y0 + (q < n ? q : n - 1)) * sstride;
    /* Columns are widened just before the elements that read them, so that the 32 bytes per
     * column they take stay in the L1 cache (a whole 500-pixel row of them would not). */
    int j = 0; /* columns 0 .. j - 1 are in `lanes` */
    for (; j + 16 <= rowbytes; j += 16) columns_8(r, j, lanes);
    for (; j < rowbytes; j++)
        for (int q = 0; q < 8; q++) lanes[8 * j + q] = r[q][j];
    int e = 0;
    for (; e + 8 <= rowlen; e += 8) {
        __m256 v[8];
        for (int i = 0; i < 8; i++) v[i] = element_8(lanes, eidx, ew, ntap, e + i);
        /* 8x8 transpose: now row q's elements e .. e + 7 */
        __m256 t[8], s[8];
        for (int i = 0; i < 4; i++) {
            t[2 * i] = _mm256_unpacklo_ps(v[2 * i], v[2 * i + 1]);
            t[2 * i + 1] = _mm256_unpackhi_ps(v[2 * i], v[2 * i + 1]);
        }
        for (int i = 0; i < 2; i++)
            for (int g = 0; g < 2; g++) {
                s[4 * i + 2 * g] = _mm256_shuffle_ps(t[4 * i + g], t[4 * i + 2 + g], 0x44);
                s[4 * i + 2 * g + 1] = _mm256_shuffle_ps(t[4 * i + g], t[4 * i + 2 + g], 0xEE);
            }
        float *out = rows + e;
        for (int q = 0; q < n; q++) {
            __m256 row = q < 4 ? _mm256_permute2f128_ps(s[q], s[4 + q], 0x20)
                               : _mm256_permute2f128_ps(s[q - 4], s[q], 0x31);
            _mm256_storeu_ps(out + (size_t)q * rowlen, row);
        }
    }
    for (; j + 16 <= rowbytes; j += 16) columns_8(r, j, lanes);
    for (; j < rowbytes; j++)
        for (int q = 0; q < 8; q++) lanes[8 * j + q] = r[q][j];
    for (; e < rowlen; e++) {
        float tmp[8];
        _mm256_storeu_ps(tmp, element_8(lanes, eidx, ew, ntap, e));
        for (int q = 0; q < n; q++) rows[(size_t)q * rowlen + e] = tmp[q];
    }
}
#endif

/* A constant tap count lets the compiler unroll the inner loop: 2 taps for ratios up to 1, 3
 * up to 2 (375 -> 256, most of ImageNet), 4 up to 3. */
#define BY_TAPS(call, ...)                                       \
    switch (ntap) {                                              \
    case 2: call(__VA_ARGS__, 2, rowlen, lanes, rows); break;    \
    case 3: call(__VA_ARGS__, 3, rowlen, lanes, rows); break;    \
    case 4: call(__VA_ARGS__, 4, rowlen, lanes, rows); break;    \
    default: call(__VA_ARGS__, ntap, rowlen, lanes, rows); break; \
    }

#define ROWS_1(src, sstride, y0, n, rowbytes, eidx, ew, ntap, rowlen, lanes, rows) \
    rows_pass_1(src, sstride, y0, n, eidx, ew, ntap, rowlen, rows)

static void rows_by_1(const uint8_t *src, long sstride, int y0, int n, int rowbytes, const int *eidx,
                      const float *ew, int ntap, int rowlen, float *lanes, float *rows) {
    (void)lanes, (void)rowbytes;
    BY_TAPS(ROWS_1, src, sstride, y0, n, rowbytes, eidx, ew)
}

#ifdef __x86_64__
static void rows_by_4(const uint8_t *src, long sstride, int y0, int n, int rowbytes, const int *eidx,
                      const float *ew, int ntap, int rowlen, float *lanes, float *rows) {
    BY_TAPS(rows_pass_4, src, sstride, y0, n, rowbytes, eidx, ew)
}

static AVX2 void rows_by_8(const uint8_t *src, long sstride, int y0, int n, int rowbytes, const int *eidx,
                           const float *ew, int ntap, int rowlen, float *lanes, float *rows) {
    BY_TAPS(rows_pass_8, src, sstride, y0, n, rowbytes, eidx, ew)
}
#endif

/* ---------------------------------------------------------------- vertical pass
 * One destination row: b[0] * h[0][i] + b[1] * h[1][i] + ... over its n source rows, in that
 * order as OpenCV sums them, rounded to nearest, ties to even (cvRound), and saturated. */
static void vertical_1(const float *const *h, const float *b, int n, int rowlen, uint8_t *D, int i) {
    for (; i < rowlen; i++) {
        float sum = b[0] * h[0][i];
        for (int k = 1; k < n; k++) sum += b[k] * h[k][i];
        D[i] = round_saturate(sum);
    }
}

static void vertical_by_1(const float *const *h, const float *b, int n, int rowlen, uint8_t *D) {
    vertical_1(h, b, n, rowlen, D, 0);
}

#ifdef __x86_64__
static void vertical_by_4(const float *const *h, const float *b, int n, int rowlen, uint8_t *D) {
    int i = 0;
    for (; i + 16 <= rowlen; i += 16) {
        __m128 w = _mm_set1_ps(b[0]);
        __m128 s0 = _mm_mul_ps(w, _mm_loadu_ps(h[0] + i)), s1 = _mm_mul_ps(w, _mm_loadu_ps(h[0] + i + 4));
        __m128 s2 = _mm_mul_ps(w, _mm_loadu_ps(h[0] + i + 8)), s3 = _mm_mul_ps(w, _mm_loadu_ps(h[0] + i + 12));
        for (int k = 1; k < n; k++) {
            w = _mm_set1_ps(b[k]);
            s0 = _mm_add_ps(s0, _mm_mul_ps(w, _mm_loadu_ps(h[k] + i)));
            s1 = _mm_add_ps(s1, _mm_mul_ps(w, _mm_loadu_ps(h[k] + i + 4)));
            s2 = _mm_add_ps(s2, _mm_mul_ps(w, _mm_loadu_ps(h[k] + i + 8)));
            s3 = _mm_add_ps(s3, _mm_mul_ps(w, _mm_loadu_ps(h[k] + i + 12)));
        }
        __m128i lo = _mm_packs_epi32(_mm_cvtps_epi32(s0), _mm_cvtps_epi32(s1));
        __m128i hi = _mm_packs_epi32(_mm_cvtps_epi32(s2), _mm_cvtps_epi32(s3));
        _mm_storeu_si128((__m128i *)(D + i), _mm_packus_epi16(lo, hi));
    }
    vertical_1(h, b, n, rowlen, D, i);
}

static AVX2 void vertical_by_8(const float *const *h, const float *b, int n, int rowlen, uint8_t *D) {
    int i = 0;
    /* packs/packus work within 128-bit halves; this puts the 32 bytes back in order */
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (; i + 32 <= rowlen; i += 32) {
        __m256 w = _mm256_set1_ps(b[0]), s[4];
        for (int g = 0; g < 4; g++) s[g] = _mm256_mul_ps(w, _mm256_loadu_ps(h[0] + i + 8 * g));
        for (int k = 1; k < n; k++) {
            w = _mm256_set1_ps(b[k]);
            for (int g = 0; g < 4; g++) s[g] = _mm256_add_ps(s[g], _mm256_mul_ps(w, _mm256_loadu_ps(h[k] + i + 8 * g)));
        }
        __m256i lo = _mm256_packs_epi32(_mm256_cvtps_epi32(s[0]), _mm256_cvtps_epi32(s[1]));
        __m256i hi = _mm256_packs_epi32(_mm256_cvtps_epi32(s[2]), _mm256_cvtps_epi32(s[3]));
        __m256i bytes = _mm256_permutevar8x32_epi32(_mm256_packus_epi16(lo, hi), order);
        _mm256_storeu_si256((__m256i *)(D + i), bytes);
    }
    vertical_1(h, b, n, rowlen, D, i);
}
#endif

typedef void (*RowsFn)(const uint8_t *, long, int, int, int, const int *, const float *, int, int, float *, float *);
typedef void (*VerticalFn)(const float *const *, const float *, int, int, uint8_t *);

/* The widest code this CPU runs: 8 (AVX2), 4 (SSE2) or 1 (plain C). */
int area_resize_widest(void) {
#ifdef __x86_64__
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") ? 8 : 4;
#else
    return 1;
#endif
}

/* Shrink src (sh x sw x cn, rows sstride bytes apart) to dst (dh x dw x cn) with the code of
 * `width` lanes (8, 4 or 1; 0: the widest this CPU runs). Returns 0, or -1 for sizes it does
 * not handle (enlarging, whole-number ratios on both axes, empty, cn outside 1..4), -2 when
 * out of memory, -3 for a width this CPU does not run. */
int area_resize_u8(const uint8_t *src, int sh, int sw, long sstride,
                   uint8_t *dst, int dh, int dw, long dstride, int cn, int width) {
    static int widest = 0;
    if (!widest) widest = area_resize_widest();
    if (width == 0) width = widest;
    if (width > widest || (width != 1 && width != 4 && width != 8)) return -3;
    RowsFn rows_by = rows_by_1;
    VerticalFn vertical_by = vertical_by_1;
#ifdef __x86_64__
    if (width == 4) rows_by = rows_by_4, vertical_by = vertical_by_4;
    if (width == 8) rows_by = rows_by_8, vertical_by = vertical_by_8;
#endif
    if (sh <= 0 || sw <= 0 || dh <= 0 || dw <= 0 || dh > sh || dw > sw || cn < 1 || cn > 4) return -1;
    /* cv::resize: inv_scale = dsize / ssize; resizeArea: scale = 1 / inv_scale. */
    double scale_x = 1.0 / ((double)dw / sw), scale_y = 1.0 / ((double)dh / sh);
    /* Both ratios whole numbers: OpenCV takes its integer path (resizeAreaFast) instead. */
    if (fabs(scale_x - lrint(scale_x)) < DBL_EPSILON && fabs(scale_y - lrint(scale_y)) < DBL_EPSILON)
        return -1;
    int rowlen = dw * cn, rowbytes = sw * cn;
    Tap *xtab = malloc(sizeof(Tap) * 2 * (size_t)sw);
    Tap *ytab = malloc(sizeof(Tap) * 2 * (size_t)sh);
    int *yfirst = malloc(sizeof(int) * (size_t)(dh + 1));
    float *ring = NULL;   /* the horizontal pass of the source rows in use, by row mod nring */
    float *lanes = malloc(sizeof(float) * width * (size_t)rowbytes);
    int *eidx = NULL;
    float *ew = NULL, *b = NULL;
    const float **h = NULL;
    int rc = 0;
    if (!xtab || !ytab || !yfirst || !lanes) {
        rc = -2;
        goto done;
    }
    int nx = area_taps(sw, dw, cn, scale_x, xtab);
    int ny = area_taps(sh, dh, 1, scale_y, ytab);
    int ntap = most_taps(xtab, nx);
    eidx = malloc(sizeof(int) * (size_t)rowlen * ntap);
    ew = malloc(sizeof(float) * (size_t)rowlen * ntap);
    if (!eidx || !ew) {
        rc = -2;
        goto done;
    }
    element_taps(xtab, nx, dw, cn, ntap, eidx, ew);
    tap_ranges(ytab, ny, dh, 1, yfirst);
    /* A destination row reads at most most_taps(ytab) consecutive source rows; they are made
     * `width` at a time, so a ring of that many plus width - 1 made ahead, in slots of width,
     * holds every row a destination row needs while keeping the working set in cache. */
    int ytaps = most_taps(ytab, ny);
    int nring = width * ((ytaps + 2 * (width - 1) + width - 1) / width);
    ring = malloc(sizeof(float) * (size_t)rowlen * nring);
    h = malloc(sizeof(float *) * (size_t)ytaps);
    b = malloc(sizeof(float) * (size_t)ytaps);
    if (!ring || !h || !b) {
        rc = -2;
        goto done;
    }
    int made = 0; /* source rows 0 .. made - 1 have been through the horizontal pass */
    for (int dy = 0; dy < dh; dy++) {
        int need = ytab[yfirst[dy + 1] - 1].si;
        while (made <= need) {
            int n = sh - made < width ? sh - made : width;
            rows_by(src, sstride, made, n, rowbytes, eidx, ew, ntap, rowlen, lanes,
                    ring + (size_t)(made % nring) * rowlen);
            made += n;
        }
        int n = 0;
        for (int k = yfirst[dy]; k < yfirst[dy + 1]; k++, n++) {
            h[n] = ring + (size_t)(ytab[k].si % nring) * rowlen;
            b[n] = ytab[k].alpha;
        }
        vertical_by(h, b, n, rowlen, dst + (long)dy * dstride);
    }
done:
    free(xtab);
    free(ytab);
    free(lanes);
    free(eidx);
    free(ew);
    free(yfirst);
    free(ring);
    free((void *)h);
    free(b);
    return rc;
}
