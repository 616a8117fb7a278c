/*
 * ggml block vectors (formats.md §9 item 3, Appendix B): decoding the
 * published block bytes must reproduce the published SHA-256 of the fp32
 * output, and quantizing the published input must reproduce the published
 * block bytes. Every expected value below is copied from formats.md.
 *
 * A failure prints its case name and a cmocka filter that reruns it, e.g.
 * test_gguf_vectors '*q4_k*' (decode and encode of q4_k).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "ir/dtype.h"
#include "formats/ref.h"
#include "util/testutil.h"

#define NX 256

typedef struct vector_case {
    qkc_preset preset;
    const char *name;
    const char *hex;        /* Appendix B block bytes */
    const char *sha_blocks; /* SHA-256 of those bytes */
    const char *sha_deq;    /* SHA-256 of the 256 dequantized fp32, little-endian */
} vector_case;

static const vector_case cases[] = {
    {QKC_PRESET_Q4_0, "q4_0",
     "6ab7f75ed30f739d816b9c25e1ba561da0b3ca379bdf31e1238ffc3c70fc0485"
     "51d42db03e37d99719098857cc4b0e20c2f491b538dfc837e9da837ad15fe706"
     "f0ed62969295ec878ab7f44eb20ca831d5d2d5c8617a410ebd373cb77342fe3c"
     "4ef61437e3ea753e0ffb69f2cc37a81ffaa492ed8772e2530183d8f8fc36ca37"
     "a417037aae05c4f5daae730352f64118",
     "81d374254865439849dd3161bcb986031d00d2363ce0bc8263e60fbdcd81cce5",
     "ac9ceb5c0bf458ac355e8217330e0ce47cbecd04999c2b846a3e7590863a30a0"},
    {QKC_PRESET_Q4_1, "q4_1",
     "d63748c308a13cf08c737e9464db2e46a9e36f5df137cac38ade31e1238fec3c"
     "70fc048551d42db0a2373ec3c99719088857cc4a0e20b2f481b538dec637c8c3"
     "e9da837ad15fe706f0ed62969295ec87a237c6c20bc14df357ce2a2e3b379e86"
     "bef152c8a6371cc38cbd02d4c21aebc82c268ac2f014970d1138ccc3a81ffaa3"
     "92ec7772d2530183d8f7fb35b037cac3a417037aae05c4f5daae730352f74118",
     "cb214c8ea2d2502244be412e15199270e434c9306c141ededbc902bd8ba08c3a",
     "a27ea37d9bcf97a4592ab9372fe2ada02a491f40ec166c132443a70b4f55646c"},
    {QKC_PRESET_Q5_0, "q5_0",
     "6ab3aa2965cdffbd970fe71a11c63749b364ad3a4055ca33e3426baa15ad72d2"
     "450fd858e0e8071aa3a74a703e33ddc153bca23f331110af99760d4174f8117a"
     "71bec8332b4257fbc29516d4a2bece1cd0cbb43c2429c80d8ab31a6ad543e97c"
     "64084072baa39980d1e3821b5a7f3cb31c7a24a3f585fc577bfc286ec7c3ea6b"
     "0fe6c2f4cc3327503d79501ef44725daffe4c4b60316b0eff76bca331883d123"
     "393d07d35b1a79eab54cd615a4dd9130",
     "8f9d8c779f5a32e49ac7291f57ccf56db67d7a83ddb2fa7ca0648a92a0550c04",
     "61cb41e7cb3fe1d0cab428dbb2b4fe2035cc2075b485656e81371dafd97912bf"},
    {QKC_PRESET_Q5_1, "q5_1",
     "963348c355d69a32015368f019e5fe49d8b64c9c52c5cfaaaf33cac3e3426baa"
     "15ad72d2460fe958e0f8071aa3a74a7063333ec3ddc153bc922e321100ae8876"
     "0c4174f8116a70ae8633c8c32b4257fbd3a616e4b3bfde1de0ccc43c243ad90e"
     "6333c6c2e5952abc06838af6bf8d455c566f2e0c7de3948067331cc3e385db5c"
     "1a7a04a88414d7a1383c1695f0293e0cde33ccc327503d79501ef44725caffe4"
     "c4b60316a0efe76b7133cac31883d123493e07e46d1a89fac55de615a4fe9131",
     "3e72014aaa10f4ff50079747175c686e5b4d559b8a53085d7ef75ed4edd6f041",
     "4f9d170e9192d102a4001981eedc216d947c7df27abfef25e2d00aef0901ea9e"},
    {QKC_PRESET_Q8_0, "q8_0",
     "79270b9a4a834baf74cfc73767e319b07f56842bb67f0df5fb22ec5da7ce2c6a"
     "e1d5da2729678f8fac74423e833dbbd097ba5081094cb763a2fd6baaf0718408"
     "d04ea0374d2710f5140903f5452f6686a0c18dd306734f15978606d047bc81a2"
     "387c0935b854d8271326b31c946fede281549ee0a0cc42ea5c4a06eb51d56288"
     "6a5bdc160e105dff992739a25cbd01702f6737ff74e86fa5b0098e47cd7fe149"
     "aab1b8bf1a0c4278d74b4b275558a2c5a623410f48e833a886cef1630a418557"
     "458d6e539d9e0d4e7f941e83dc2700721fb9a74ef6a2a2b295ae00f83bdb268c"
     "79201265faf45ed58108547173b2da27c5eab71a5bcdc7cd2460b0a99de78c02"
     "1a9781ec2587386c5421eb87ce6bc798",
     "d3d1d36a49ee786b85d5806ab40e6084323c1623b81898708637555d39b594c3",
     "11a750c00f8859453f43f7e73501738a11ecedd2c33fdeaf34b4d48c0b392bf9"},
    {QKC_PRESET_Q4_K, "q4_k",
     "5720fd2bf9f9f7f9fbfff9fe67acffc7b8f11c103cf3cfc504cb4e561943df0d"
     "90da43ef2887f73a76fd02955ade26c599a739a818f77c6b0ed022642155c87f"
     "ecd98170d855ec03f0e26b9f989be38dcbc12d43279eba8ebb67af260e4162d8"
     "80bc04cfb51cd2c2232389b8eb1f950c477e39a3e25c4752a2e3312327670b85"
     "aa110e79a80dc7f7eda570085cfe4e13",
     "67577da58e4601e6f07935b6492ef048652e335f7eff57ef8e828bddbc940da2",
     "21f3d279ecc62d403cd1bc6a4e1b1d02347c982f86dcd5030a2ce2c31cfe0a00"},
    {QKC_PRESET_Q5_K, "q5_k",
     "011cfc2bfcfdfcfbfafefbff6b8bffeb7f6a558c857a3736b48b310051004fb5"
     "ee3f4873ed52aea1c88b347e7ddf681e61e3292059f59e8908867cac3375af0a"
     "10a576df410eef54edfb0419a5ad4c7a426e725130fee8d50cc144d842aaa0ee"
     "d9b223e1c0bae817f0d4c64f3136d71aa6a33a864f3d751c86ce5e4b0d93d4b0"
     "007808af8b18d49435361290f72e390890ee7447d5aa9fa464d6635640df171b"
     "45310fe4621c8ffecc5be011aafe9e36",
     "c00b9b288712347f2375e5f6e3ec3163ce9e2349ca691e0b302f29fa68e78d62",
     "d9a56fd54eeb415cb08c79ce9de20738a8deff80ca7581317abef47c4226ffce"},
    {QKC_PRESET_Q6_K, "q6_k",
     "4dd95e2f1ed423ccbe0376f72a4421eb4e5662112d4321f80589e6fc25d6e85b"
     "5aaad4745bcdb08f015f7f84863f14a082332ea9585fab1acc8d61624444880e"
     "000a774290a133a4a160e0770229f6ae9c3fec81489ee5d382500a2d50c3dace"
     "06a7c77198290124a3aaad8950930c0a6d600ebb9f2ce5bc5888bd2d41ba296f"
     "a99f20a320df7c6a32c900460153ec70fbed834ce156fe01c6cc63baa5acc2ba"
     "6d4f10b7f2486d78bdf63832206707ada7043e60a23c93d3ff9f452171fc760c"
     "7b7c80828f8a8286717f8f7972808c80e293",
     "419579bda5f2f6ec34f759b9254b13ec42b6b997d4239878d3f05a88d32e2456",
     "d0ecbd95b50311f6c80267f85a8b702c531806c5049907f9c49aa7e1fe272b1a"},
    {QKC_PRESET_IQ4_NL, "iq4_nl",
     "86a7f74fd30f729e805cac24e1ca461ea0b2d8279bdf31e1128ffd2d70fd0394"
     "41d31ec04627d9a71a098847dd3c0f10c1f391c438efb527eadb826ae14fe605"
     "f0ee51a59194ed8696a7f33ec20da831e4d1d4d8607a310ebe2792a77232fe2c"
     "3ef51327e3ea742e0ffc59f1dc27b80ffab392ed7771e1420192e8f7fc25a327"
     "a316036abe04c4f4ebbe620241f63018",
     "12198e416ed8ba1a79e774b671f0b7b37e2e0b124f20dfc968bda28fd96c4e8f",
     "7d2a8c0c80d5e067611292c512e4ca3f95572ff310b25b83aa54caa10e71e714"},
    {QKC_PRESET_IQ4_XS, "iq4_xs",
     "1694030f3f24ef20f75ed30f739d815cac24e1ca561da0b29bef20f0128ffd2d"
     "60fd039441e31ec0e9a71a098847dd3c0f10c1f390c438efeadb826ae14fe605"
     "f0ee51a59194ed86f43ec20da831e4d1d4d8617a311ebd377232fe2c3ef51327"
     "e3ea742e0ffc69f1b81ffaa392ed7772e2520192e8f7fc25a316026abe04c3f4"
     "ebbe620241f63018",
     "d67d51fb9529d2d93fe46b029e4a2990e91b0869ed16683b70c00eb5429a5d35",
     "f2fb0dfae506561bbeac25060a77f2458c12fcc2acee26b5319b32e7a5e80aa2"},
    /* formats.md's TQ2_0 section: ggml 0.25.1's quantize_row_tq2_0_ref on
     * the same input (the peer library of bench/peers), not Appendix B */
    {QKC_PRESET_TQ2_0, "tq2_0",
     "5558125012986a552185025501509a62a499404a9155a911858a5065555a8165"
     "596812448166554649850601125414595406215a59225898a05145196aa26502"
     "cc43",
     "83b923c0860632db4a6ec9fbd4525892858a91317e53d291ae9d4fd5533de6ae",
     "0fc47bb7976050df6ec2ef3ad0938dde1b3c5834270e451645f519b4e67dbd87"},
    /* likewise for TQ1_0 (the same trits and d as TQ2_0, so the same
     * dequantized values) */
    {QKC_PRESET_TQ1_0, "tq1_0",
     "8046b70db64bfb816a7aad80580df4c236a105e96781a85f79eb0e8981f35d8b"
     "d5dc10933f709c93b35b723d496782b688102a8fcc43",
     "f2c5fa9041389caaf2f42a4ffacacad3bc1c1c7245533076ec431786c4d36ecb",
     "0fc47bb7976050df6ec2ef3ad0938dde1b3c5834270e451645f519b4e67dbd87"},
    /* q3_k: ggml 0.25.1's quantize_row_q3_K_ref on the same input (the
     * peer library of bench/peers); decode only: qkc's q3_k quantizer
     * rounds to nearest where ggml's searches its scales */
    {QKC_PRESET_Q3_K, "q3_k",
     "6f3f04ddd42f6667e5da605140513ef4ff0e7942dd63dfd0fbba255f4cee592f"
     "444f924346cfe8da32da59e957ba8cf1e39b1accc4f0ec27c1dde3710f69e539"
     "8ecfb56af4948ab07afc787540cb231c535a3ed8493e87caee7ed308a2fcbd6e"
     "69aa97b584078567f3330030d5a8",
     "1a8adac8a08de0754aa1ede510ee4de73ff9caeb0207a7b694383f3af7482e17",
     "2f392f9b47537876cabda50198ad433d0aad95a7d2c14ccdeec825368c22ae92"},
    /* q2_k: likewise, decode only (qkc's q2_k quantizer rounds to nearest) */
    {QKC_PRESET_Q2_K, "q2_k",
     "bddeeecddedccdedacadbbccbeffeeeeaa9c22a022dc6f6931ca07550254af73"
     "f8ee814fe255fd12c5cf70b9a6bfd1b95e7c6384c16b5e4b8ec54b011354249d"
     "a80e316fad32acdcf0904a2d7ef379120f312234",
     "be6445365a2e95b5d9eec7507b3da07bd7785592c495b7076c3ec4ac779334e2",
     "c331cd3a13150345f3cf13ae7fb39f9ba27ac65403e35c016875eeb53ad3154a"},
    {QKC_PRESET_MXFP4, "mxfp4",
     "7ef14fe67f169e974dad75f7db537ec7d77e1567ef7fff0776f6af76fe1ddf6e"
     "f65f7e6229f2f110d966e5f7ff5f7e1f5de1677e72641eb36fd77afc7f77cf3c"
     "2f2d760b7ef56fd77ec067f5e7e5e0371b677fce617e1667ff6d6ff47662f6fb"
     "256e7ffd3af77e40f7744e2f7699af7fdeff1f707976ec7e3efbfea347fd5d7d"
     "7447beffdf7beff0",
     "3a78a2bb95e80294c215e586b4b7e2e2770191e2d1c07e96d02aa00ffb088483",
     "839d1813d95bb124573569b8053562bcd1794781473e0f36f4a3f2ab51f2f0db"},
};

#define NCASES (sizeof cases / sizeof cases[0])

/* Fail with the case name and the command that reruns it. */
#define CHECK(cond, test, ...)                                                                   \
    do {                                                                                         \
        if (!(cond)) {                                                                           \
            print_error("case %s: ", test);                                                      \
            print_error(__VA_ARGS__);                                                            \
            print_error("\nrerun: test_gguf_vectors '*%s*'\n", test);                            \
            fail();                                                                              \
        }                                                                                        \
    } while (0)

/* §9 item 3: s = s*1664525 + 1013904223 (mod 2^32), v = ((s >> 8) % 2001) - 1000, x = v/256. */
static void make_input(float x[NX])
{
    uint32_t s = 1;
    for (int i = 0; i < NX; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = (float)((int)((s >> 8) % 2001u) - 1000) / 256.0f;
    }
}

/* SHA-256 of fp32 values serialised little-endian, independent of host order. */
static void sha_f32(const float *y, int n, char out[65])
{
    uint8_t buf[NX * 4];
    for (int i = 0; i < n; i++) {
        uint32_t u = qkc_f32_bits(y[i]);
        for (int b = 0; b < 4; b++)
            buf[4 * i + b] = (uint8_t)(u >> (8 * b));
    }
    qkc_sha256_hex(buf, (size_t)n * 4, out);
}

static const vector_case *find_case(const char *name)
{
    for (size_t i = 0; i < NCASES; i++)
        if (strcmp(cases[i].name, name) == 0)
            return &cases[i];
    return NULL;
}

/* Published block bytes of a case, length checked against the preset. */
static long case_blocks(const vector_case *vc, uint8_t *out, size_t cap)
{
    const qkc_preset_desc *pd = qkc_preset_get(vc->preset);
    long len = qkc_hex_decode(vc->hex, out, cap);
    char sha[65];
    assert_non_null(pd);
    CHECK(len == NX / pd->block_elems * pd->block_bytes, vc->name, "hex has %ld bytes, expected %lld", len,
          (long long)(NX / pd->block_elems * pd->block_bytes));
    qkc_sha256_hex(out, (size_t)len, sha);
    CHECK(strcmp(sha, vc->sha_blocks) == 0, vc->name, "transcribed block bytes hash to %s, formats.md says %s",
          sha, vc->sha_blocks);
    return len;
}

static void test_input(void **state)
{
    (void)state;
    static const float head[8] = {0.32421875f, -2.98046875f, 2.1484375f, -3.640625f,
                                  2.1796875f,  -2.37890625f, 3.3984375f, -1.4375f};
    float x[NX];
    char sha[65];
    make_input(x);
    for (int i = 0; i < 8; i++)
        CHECK(x[i] == head[i], "input", "x[%d] = %.9g, expected %.9g", i, (double)x[i], (double)head[i]);
    sha_f32(x, NX, sha);
    CHECK(strcmp(sha, "75af48e74e27fda1f321f026661b5f08c3b676dbc86a60580c59de23fef11e47") == 0, "input",
          "input SHA-256 %s", sha);
}

/* §9 worked check: Q4_0 block 0, d = 0xB76A, qs[0] = 0xF7. */
static void test_q4_0_worked(void **state)
{
    (void)state;
    const vector_case *vc = find_case("q4_0");
    uint8_t blk[4096];
    float y[NX];
    assert_non_null(vc);
    case_blocks(vc, blk, sizeof blk);
    CHECK(blk[0] == 0x6a && blk[1] == 0xb7 && blk[2] == 0xf7, "q4_0_worked", "unexpected block bytes");
    CHECK(qkc_f16_to_f32(qkc_rd16(blk)) == -0.46337890625f, "q4_0_worked", "d = %.9g",
          (double)qkc_f16_to_f32(qkc_rd16(blk)));
    qkc_gguf_dequantize_row(QKC_PRESET_Q4_0, blk, y, NX);
    CHECK(y[0] == 0.46337890625f, "q4_0_worked", "element 0 = %.12g", (double)y[0]);
    CHECK(y[16] == -3.24365234375f, "q4_0_worked", "element 16 = %.12g", (double)y[16]);
}

static void run_decode(const char *name)
{
    char test[64], sha[65];
    const vector_case *vc = find_case(name);
    uint8_t blk[4096];
    float y[NX];
    snprintf(test, sizeof test, "decode_%s", name);
    assert_non_null(vc);
    case_blocks(vc, blk, sizeof blk);
    memset(y, 0xFF, sizeof y); /* NaN everywhere: an element left unwritten changes the hash */
    qkc_gguf_dequantize_row(vc->preset, blk, y, NX);
    sha_f32(y, NX, sha);
    CHECK(strcmp(sha, vc->sha_deq) == 0, test, "dequantized SHA-256 %s, published %s", sha, vc->sha_deq);
}

static void run_encode(const char *name)
{
    char test[64];
    const vector_case *vc = find_case(name);
    uint8_t want[4096], got[4096];
    float x[NX];
    long len;
    snprintf(test, sizeof test, "encode_%s", name);
    assert_non_null(vc);
    len = case_blocks(vc, want, sizeof want);
    make_input(x);
    memset(got, 0xA5, sizeof got);
    qkc_gguf_quantize_row(vc->preset, x, got, NX);
    for (long i = 0; i < len; i++)
        CHECK(got[i] == want[i], test, "byte %ld (block %ld) = %02x, ggml wrote %02x", i,
              i / qkc_preset_get(vc->preset)->block_bytes, got[i], want[i]);
    CHECK(got[len] == 0xA5, test, "wrote past the end of the row");
}

#define VEC_TESTS(ID)                                                                            \
    static void test_decode_##ID(void **state) { (void)state; run_decode(#ID); }                  \
    static void test_encode_##ID(void **state) { (void)state; run_encode(#ID); }

VEC_TESTS(q4_0)
VEC_TESTS(q4_1)
VEC_TESTS(q5_0)
VEC_TESTS(q5_1)
VEC_TESTS(q8_0)
VEC_TESTS(q4_k)
VEC_TESTS(q5_k)
VEC_TESTS(q6_k)
VEC_TESTS(iq4_nl)
VEC_TESTS(iq4_xs)
VEC_TESTS(mxfp4)
VEC_TESTS(tq2_0)
VEC_TESTS(tq1_0)
static void test_decode_q3_k(void **state) { (void)state; run_decode("q3_k"); }
static void test_decode_q2_k(void **state) { (void)state; run_decode("q2_k"); }

#define VEC_ENTRIES(ID) cmocka_unit_test(test_decode_##ID), cmocka_unit_test(test_encode_##ID)

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_input), cmocka_unit_test(test_q4_0_worked),
        VEC_ENTRIES(q4_0), VEC_ENTRIES(q4_1), VEC_ENTRIES(q5_0), VEC_ENTRIES(q5_1), VEC_ENTRIES(q8_0),
        VEC_ENTRIES(q4_k), VEC_ENTRIES(q5_k), VEC_ENTRIES(q6_k), VEC_ENTRIES(iq4_nl), VEC_ENTRIES(iq4_xs), VEC_ENTRIES(mxfp4),
        VEC_ENTRIES(tq2_0), VEC_ENTRIES(tq1_0), cmocka_unit_test(test_decode_q3_k), cmocka_unit_test(test_decode_q2_k),
    };
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests_name("gguf_vectors", tests, NULL, NULL);
}
