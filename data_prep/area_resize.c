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
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#include <xmmintrin.h>
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

static inline uint8_t round_saturate(float v) {
    long r = lrintf(v); /* ties to even under the default rounding mode, as cvRound */
    return (uint8_t)(r < 0 ? 0 : r > 255 ? 255 : r);
}

#ifdef __SSE2__
/* Element e of four rows at once: lane q = 0 + p0 * w0 + p1 * w1 + ... for row q. */
static inline __attribute__((always_inline)) __m128 element(const float *lanes, const int *eidx, const float *ew,
                                                          int ntap, int e) {
    const int *ix = eidx + e * ntap;
    const float *w = ew + e * ntap;
    __m128 acc = _mm_setzero_ps();
    for (int k = 0; k < ntap; k++)
        acc = _mm_add_ps(acc, _mm_mul_ps(_mm_loadu_ps(lanes + 4 * ix[k]), _mm_set1_ps(w[k])));
    return acc;
}
#endif

/* Horizontal pass of source rows y0 .. y0 + n - 1 (n <= 4) into out[q][e], e = dx * cn + c.
 * Element e's taps are eidx[e * ntap + k] (byte offsets in a row) with weights ew[...]; a
 * column with fewer taps is padded with weight 0, which adds +0 to a non-negative sum and so
 * changes nothing. With SSE2 the four rows go through as the four lanes of one vector (the
 * same per-lane arithmetic, in the same order): `lanes` is scratch for 4 x rowbytes floats. */
static inline __attribute__((always_inline)) void rows_pass(const uint8_t *src, long sstride, int y0, int n, int rowbytes,
                      const int *eidx, const float *ew, int ntap, int rowlen,
                      float *lanes, float *rows) {
#ifdef __SSE2__
    const uint8_t *r[4];
    for (int q = 0; q < 4; q++) r[q] = src + (long)(y0 + (q < n ? q : n - 1)) * sstride;
    /* lanes[4 * j + q] = row q's byte j, as float */
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
        __m128 v0 = element(lanes, eidx, ew, ntap, e), v1 = element(lanes, eidx, ew, ntap, e + 1);
        __m128 v2 = element(lanes, eidx, ew, ntap, e + 2), v3 = element(lanes, eidx, ew, ntap, e + 3);
        _MM_TRANSPOSE4_PS(v0, v1, v2, v3); /* now v<q> = row q's elements e .. e + 3 */
        float *out = rows + e;
        _mm_storeu_ps(out, v0);
        if (n > 1) _mm_storeu_ps(out + rowlen, v1);
        if (n > 2) _mm_storeu_ps(out + 2 * rowlen, v2);
        if (n > 3) _mm_storeu_ps(out + 3 * rowlen, v3);
    }
    for (; e < rowlen; e++) {
        float tmp[4];
        _mm_storeu_ps(tmp, element(lanes, eidx, ew, ntap, e));
        for (int q = 0; q < n; q++) rows[(size_t)q * rowlen + e] = tmp[q];
    }
#else
    (void)lanes;
    (void)rowbytes;
    for (int q = 0; q < n; q++) {
        const uint8_t *S = src + (long)(y0 + q) * sstride;
        float *out = rows + (size_t)q * rowlen;
        for (int e = 0; e < rowlen; e++) {
            float a = 0.f;
            for (int k = 0; k < ntap; k++) a = a + S[eidx[e * ntap + k]] * ew[e * ntap + k];
            out[e] = a;
        }
    }
#endif
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

/* One destination row: b[0] * h[0][i] + b[1] * h[1][i] + ... over its n source rows, in that
 * order as OpenCV sums them, rounded to nearest, ties to even (cvRound), and saturated. */
static void vertical_pass(const float *const *h, const float *b, int n, int rowlen, uint8_t *D) {
    int i = 0;
#ifdef __SSE2__
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
#endif
    for (; i < rowlen; i++) {
        float sum = b[0] * h[0][i];
        for (int k = 1; k < n; k++) sum += b[k] * h[k][i];
        D[i] = round_saturate(sum);
    }
}

/* Shrink src (sh x sw x cn, rows sstride bytes apart) to dst (dh x dw x cn). Returns 0, or
 * -1 for sizes it does not handle (enlarging, whole-number ratios on both axes, empty, cn
 * outside 1..4), -2 when out of memory. */
int area_resize_u8(const uint8_t *src, int sh, int sw, long sstride,
                   uint8_t *dst, int dh, int dw, long dstride, int cn) {
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
    float *lanes = malloc(sizeof(float) * 4 * (size_t)rowbytes);
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
     * four at a time, so a ring of that many plus 3 ahead plus 3 of alignment, in slots of 4,
     * holds every row a destination row needs while keeping the working set in cache. */
    int ytaps = most_taps(ytab, ny);
    int nring = 4 * ((ytaps + 6 + 3) / 4);
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
            int n = sh - made < 4 ? sh - made : 4;
            float *slot = ring + (size_t)(made % nring) * rowlen;
            /* A constant tap count lets the compiler unroll the inner loop: 2 taps for ratios
             * up to 1, 3 up to 2 (375 -> 256, most of ImageNet), 4 up to 3. */
            switch (ntap) {
            case 2: rows_pass(src, sstride, made, n, rowbytes, eidx, ew, 2, rowlen, lanes, slot); break;
            case 3: rows_pass(src, sstride, made, n, rowbytes, eidx, ew, 3, rowlen, lanes, slot); break;
            case 4: rows_pass(src, sstride, made, n, rowbytes, eidx, ew, 4, rowlen, lanes, slot); break;
            default: rows_pass(src, sstride, made, n, rowbytes, eidx, ew, ntap, rowlen, lanes, slot); break;
            }
            made += n;
        }
        int n = 0;
        for (int k = yfirst[dy]; k < yfirst[dy + 1]; k++, n++) {
            h[n] = ring + (size_t)(ytab[k].si % nring) * rowlen;
            b[n] = ytab[k].alpha;
        }
        vertical_pass(h, b, n, rowlen, dst + (long)dy * dstride);
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
