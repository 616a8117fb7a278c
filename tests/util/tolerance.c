#include "tolerance.h"

static const qkc_tol_roundtrip roundtrip[] = {
    {"w=q4_0", 0.011}, /* measured 7.137e-03 */
    {"w=q4_1", 0.009}, /* measured 5.981e-03 */
    {"w=q5_0", 0.0027}, /* measured 1.776e-03 */
    {"w=q5_1", 0.0021}, /* measured 1.405e-03 */
    {"w=q8_0", 4.2e-05}, /* measured 2.785e-05 */
    {"w=q4_k", 0.0075}, /* measured 5.017e-03 */
    {"w=q5_k", 0.0019}, /* measured 1.272e-03 */
    {"w=q6_k", 0.00046}, /* measured 3.036e-04 */
    {"w=iq4_nl", 0.0091}, /* measured 6.078e-03 */
    {"w=iq4_xs", 0.0086}, /* measured 5.728e-03 */
    {"w=tq2_0", 0.95}, /* measured 6.340e-01: ternary codes for normal weights */
    {"w=tq1_0", 0.95}, /* measured 6.340e-01: the same ternary codes as tq2_0 */
    {"w=q3_k", 0.035}, /* measured 2.358e-02 (qkc's round-to-nearest quantizer) */
    {"w=q2_k", 0.16}, /* measured 1.065e-01 (qkc's round-to-nearest quantizer) */
    {"w=mxfp4", 0.02}, /* measured 1.329e-02 */
    {"w=mxfp8", 0.0013}, /* measured 8.555e-04 */
    {"w=mxfp8:e5m2", 0.0044}, /* measured 2.902e-03 */
    {"w=nf4_bnb", 0.013}, /* measured 8.358e-03 */
    {"w=nf4_bnb:dq", 0.013}, /* measured 8.359e-03 */
    {"w=nf4_bnb group=128", 0.013}, /* measured 8.960e-03 */
    {"w=gptq", 0.015}, /* measured 9.751e-03 */
    {"w=gptq:8", 5e-05}, /* measured 3.337e-05 */
    {"w=gptq:3 group=32", 0.044}, /* measured 2.925e-02 */
    {"w=gptq:2 group=32", 0.24}, /* measured 1.612e-01 */
    {"w=gptq:actorder", 0.014}, /* measured 9.413e-03 */
    {"w=gptq group=channel", 0.022}, /* measured 1.470e-02 */
    {"w=awq", 0.015}, /* measured 9.753e-03 */
    {"w=awq group=32", 0.0095}, /* measured 6.349e-03 */
    {"w=int8", 8.5e-05}, /* measured 5.663e-05 */
    {"w=int8 group=32 scale=f16", 4.2e-05}, /* measured 2.777e-05 */
    {"w=uint8 zero=int", 7.4e-05}, /* measured 4.952e-05 */
    {"w=int4", 0.028}, /* measured 1.841e-02 */
    {"w=int4 group=32 scale=f16", 0.014}, /* measured 9.160e-03 */
    {"w=int4 group=128 scale=f16 zero=int", 0.015}, /* measured 9.739e-03 */
    {"w=uint4 group=32 scale=f16 zero=float", 0.009}, /* measured 5.993e-03 */
    {"w=uint4 group=64 scale=bf16", 0.76}, /* measured 5.034e-01 */
    {"w=int3 group=32", 0.074}, /* measured 4.965e-02 */
    {"w=int2 group=32 zero=int", 0.24}, /* measured 1.611e-01 */
    {"w=uint3 group=64 zero=int", 0.055}, /* measured 3.696e-02 */
    {"w=uint2 group=16 zero=float", 0.16}, /* measured 1.050e-01 */
    {"w=nf4 group=64", 0.013}, /* measured 8.419e-03 */
    {"w=fp4 group=32 scale=e8m0", 0.02}, /* measured 1.303e-02 */
    {"w=fp4 group=32", 0.015}, /* measured 1.021e-02 */
    {"w=fp8e4m3", 0.0011}, /* measured 7.003e-04 */
    {"w=fp8e5m2", 0.0042}, /* measured 2.767e-03 */
    {"w=fp8e4m3 group=tensor", 0.0011}, /* measured 7.044e-04 */
    {"w=fp8e5m2 group=128 scale=fp8e4m3:f32:2", 0.004}, /* measured 2.664e-03 */
    {"w=iq4nl group=32 scale=f16", 0.011}, /* measured 7.284e-03 */
    {"w=int4 group=32 scale=int8:f32:8", 0.014}, /* measured 9.021e-03 */
    {"w=int4 group=32 scale=uint6:f16:8 zero=int", 0.0095}, /* measured 6.340e-03 */
    {"w=int4 group=32 scale=fp8e4m3:f32:16", 0.014}, /* measured 9.263e-03 */
    {"w=int4 group=32 scale=e8m0", 0.03}, /* measured 2.013e-02 */
    {"w=int8 group=32 scale=e8m0", 0.0001}, /* measured 6.776e-05 */
    {"w=int4 group=tensor", 0.044}, /* measured 2.963e-02 */
    {"w=int4 group=tensor zero=int", 0.034}, /* measured 2.238e-02 */
    {"w=int4 group=32 outliers=sparse:0.01", 0.011}, /* measured 7.522e-03 */
    {"w=uint4 group=64 scale=f16 zero=int outliers=sparse:0.02", 0.0087}, /* measured 5.757e-03 */
    {"w=int4 group=32 scale=f16 outliers=act:2.5 compute=int8", 0.014}, /* weights as w=int4 group=32 scale=f16 */
    {"w=int4 group=50 scale=f16", 0.015}, /* measured 1.020e-02 */
    {"w=bf16", 4.1e-06}, /* measured 2.743e-06 */
    {"w=f16", 6.5e-08}, /* measured 4.301e-08 */
    {"w=tf32", 6.5e-08}, /* measured 4.320e-08 */
    {"w=int5 group=32", 0.003}, /* measured 1.972e-03 */
    {"w=uint5 group=32 zero=float scale=f16", 0.0021}, /* measured 1.409e-03 */
    {"w=int6 group=16 scale=int8:f16:16", 0.00055}, /* measured 3.674e-04 */
    {"w=uint6 group=64", 0.74}, /* measured 4.936e-01 */
    {"w=f32", 0.0}, /* exact */
    {"w=lut4 group=tensor", 0.019}, /* measured 1.269e-02 */
    {"w=lut4 group=128 table=f16", 0.016}, /* measured 1.038e-02 */
    {"w=lut4 group=64 table=f32", 0.0122}, /* measured 8.124e-03 */
    {"w=lut4 group=channel", 0.019}, /* measured 1.271e-02 */
    {"w=lut4 group=48", 0.01}, /* measured 6.651e-03 */
    {"w=lut3 group=32", 0.033}, /* measured 2.201e-02 */
    {"w=lut3 group=40 table=f32", 0.036}, /* measured 2.426e-02 */
    {"w=lut2 group=channel table=f32", 0.17}, /* measured 1.134e-01 */
    {"w=lut2 group=tensor", 0.173}, /* measured 1.153e-01 */
    {"w=vq vq=2:8", 0.0146}, /* measured 9.740e-03 */
    {"w=vq vq=4:8 table=f32", 0.138}, /* measured 9.221e-02 */
    {"w=vq vq=8:10 table=f32", 0.249}, /* measured 1.659e-01 */
    {"w=mixed bits=8x8,2x8,4x* group=32 scale=f16 zero=int", 0.038}, /* measured 2.540e-02 (n=64: 8x8,2x8,4x48) */
};

const qkc_tol_roundtrip *qkc_tol_roundtrip_table(size_t *count)
{
    *count = sizeof roundtrip / sizeof roundtrip[0];
    return roundtrip;
}

#include <string.h>

static const qkc_tol_kernel kernel[] = {
    {"*", "f32", 1e-10, 1e-4, 0, 8.0},
    {"*", "f16", 0x1p-22, 1.0, 1, 8.0},
    {"*", "bf16", 0x1p-16, 1.0, 1, 8.0},
};

const qkc_tol_kernel *qkc_tol_kernel_for(const char *compute, const char *out)
{
    for (size_t i = 0; i < sizeof kernel / sizeof kernel[0]; i++)
        if ((!strcmp(kernel[i].compute, "*") || !strcmp(kernel[i].compute, compute)) && !strcmp(kernel[i].out, out))
            return &kernel[i];
    return &kernel[0];
}

static const qkc_tol_compute compute[] = {
    {"int8", 4.5e-05}, /* measured 2.978e-05 (iq4_xs; q4_k 2.476e-05 the least) */
    {"bf16", 9.1e-06}, /* measured 6.075e-06 */
    {"f16", 1.4e-07},  /* measured 9.235e-08 */
    {"tf32", 1.4e-07}, /* measured 9.235e-08 */
};

const qkc_tol_compute *qkc_tol_compute_table(size_t *count)
{
    *count = sizeof compute / sizeof compute[0];
    return compute;
}
