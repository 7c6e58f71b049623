/* Base64; see base64.h. */
#include "base64.h"

#include <stdint.h>
#include <string.h>

#include <stdint.h>

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* 0..63 for alphabet characters, 64 for '=', 255 for anything else. */
static const uint8_t rev[256] = {
    ['A'] = 0,  ['B'] = 1,  ['C'] = 2,  ['D'] = 3,  ['E'] = 4,  ['F'] = 5,  ['G'] = 6,  ['H'] = 7,
    ['I'] = 8,  ['J'] = 9,  ['K'] = 10, ['L'] = 11, ['M'] = 12, ['N'] = 13, ['O'] = 14, ['P'] = 15,
    ['Q'] = 16, ['R'] = 17, ['S'] = 18, ['T'] = 19, ['U'] = 20, ['V'] = 21, ['W'] = 22, ['X'] = 23,
    ['Y'] = 24, ['Z'] = 25, ['a'] = 26, ['b'] = 27, ['c'] = 28, ['d'] = 29, ['e'] = 30, ['f'] = 31,
    ['g'] = 32, ['h'] = 33, ['i'] = 34, ['j'] = 35, ['k'] = 36, ['l'] = 37, ['m'] = 38, ['n'] = 39,
    ['o'] = 40, ['p'] = 41, ['q'] = 42, ['r'] = 43, ['s'] = 44, ['t'] = 45, ['u'] = 46, ['v'] = 47,
    ['w'] = 48, ['x'] = 49, ['y'] = 50, ['z'] = 51, ['0'] = 52, ['1'] = 53, ['2'] = 54, ['3'] = 55,
    ['4'] = 56, ['5'] = 57, ['6'] = 58, ['7'] = 59, ['8'] = 60, ['9'] = 61, ['+'] = 62, ['/'] = 63,
    ['='] = 64,
};

/* rev[] leaves unlisted bytes at 0, which is also 'A': tell them apart. */
static inline int val(unsigned char c)
{
    if (c == 'A')
        return 0;
    return rev[c] == 0 ? 255 : rev[c];
}

size_t cm_b64_encode(const void *in, size_t n, char *out)
{
    const uint8_t *p = in;
    char *o = out;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = ((uint32_t)p[i] << 16) | ((uint32_t)p[i + 1] << 8) | p[i + 2];
        *o++ = alphabet[v >> 18];
        *o++ = alphabet[(v >> 12) & 63];
        *o++ = alphabet[(v >> 6) & 63];
        *o++ = alphabet[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        *o++ = alphabet[v >> 18];
        *o++ = alphabet[(v >> 12) & 63];
        *o++ = '=';
        *o++ = '=';
    } else if (n - i == 2) {
        uint32_t v = ((uint32_t)p[i] << 16) | ((uint32_t)p[i + 1] << 8);
        *o++ = alphabet[v >> 18];
        *o++ = alphabet[(v >> 12) & 63];
        *o++ = alphabet[(v >> 6) & 63];
        *o++ = '=';
    }
    return (size_t)(o - out);
}

long cm_b64_decode(const char *in, size_t n, void *out)
{
    uint8_t *o = out;
    if (n % 4 != 0)
        return -1;
    for (size_t i = 0; i < n; i += 4) {
        int a = val((unsigned char)in[i]), b = val((unsigned char)in[i + 1]);
        int c = val((unsigned char)in[i + 2]), d = val((unsigned char)in[i + 3]);
        if (a > 63 || b > 63 || c == 255 || d == 255)
            return -1;
        bool last = i + 4 == n;
        if (c == 64) { /* "xx==" */
            if (!last || d != 64 || (b & 15) != 0)
                return -1;
            *o++ = (uint8_t)(a << 2 | b >> 4);
            break;
        }
        if (d == 64) { /* "xxx=" */
            if (!last || (c & 3) != 0)
                return -1;
            *o++ = (uint8_t)(a << 2 | b >> 4);
            *o++ = (uint8_t)((b & 15) << 4 | c >> 2);
            break;
        }
        *o++ = (uint8_t)(a << 2 | b >> 4);
        *o++ = (uint8_t)((b & 15) << 4 | c >> 2);
        *o++ = (uint8_t)((c & 3) << 6 | d);
    }
    return (long)(o - (uint8_t *)out);
}

size_t cm_b64url_encode(const void *in, size_t n, char *out)
{
    size_t len = cm_b64_encode(in, n, out);
    for (size_t i = 0; i < len; i++)
        out[i] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
    out[len] = '\0';
    return len;
}

long cm_b64url_decode(const char *in, size_t n, void *out, size_t cap)
{
    if (n > 4096 || cm_b64_dec_max(n) > cap + 2)
        return -1;
    char std[4096];
    uint8_t tmp[3072];
    for (size_t i = 0; i < n; i++)
        std[i] = in[i] == '-' ? '+' : in[i] == '_' ? '/' : in[i];
    long len = cm_b64_decode(std, n, tmp);
    if (len < 0 || (size_t)len > cap)
        return -1;
    memcpy(out, tmp, (size_t)len);
    return len;
}
