/*
 * png_count FILE RRGGBB: print how many pixels of a PNG have exactly that
 * colour (8-bit RGB or RGBA, not interlaced: what a browser's screenshot
 * writes), for the test that the roofline SVG renders its points. Exit 0
 * with the count on stdout, 2 on an unreadable or unsupported file.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int paeth(int a, int b, int c)
{
    int p = a + b - c, pa = abs(p - a), pb = abs(p - b), pc = abs(p - c);
    return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

int main(int argc, char **argv)
{
    FILE *f;
    unsigned char *file, *idat = NULL, *raw;
    long size;
    size_t pos = 8, idat_len = 0;
    uint32_t width = 0, height = 0, bpp = 0, stride;
    unsigned long want, count = 0;
    uLongf raw_len;
    if (argc != 3 || strlen(argv[2]) != 6) {
        fprintf(stderr, "usage: png_count FILE RRGGBB\n");
        return 2;
    }
    want = strtoul(argv[2], NULL, 16);
    if (!(f = fopen(argv[1], "rb")) || fseek(f, 0, SEEK_END) || (size = ftell(f)) < 8 || fseek(f, 0, SEEK_SET)) {
        fprintf(stderr, "png_count: cannot read %s\n", argv[1]);
        return 2;
    }
    file = malloc((size_t)size);
    if (!file || fread(file, 1, (size_t)size, f) != (size_t)size || memcmp(file, "\x89PNG\r\n\x1a\n", 8)) {
        fprintf(stderr, "png_count: %s is not a PNG\n", argv[1]);
        return 2;
    }
    fclose(f);
    while (pos + 12 <= (size_t)size) {
        uint32_t len = be32(file + pos);
        const unsigned char *type = file + pos + 4, *data = file + pos + 8;
        if (len > (size_t)size - pos - 12)
            break;
        if (!memcmp(type, "IHDR", 4) && len >= 13) {
            width = be32(data);
            height = be32(data + 4);
            if (data[8] != 8 || (data[9] != 2 && data[9] != 6) || data[12] != 0) {
                fprintf(stderr, "png_count: only 8-bit RGB/RGBA, not interlaced\n");
                return 2;
            }
            bpp = data[9] == 6 ? 4 : 3;
        } else if (!memcmp(type, "IDAT", 4)) {
            unsigned char *t = realloc(idat, idat_len + len);
            if (!t)
                return 2;
            idat = t;
            memcpy(idat + idat_len, data, len);
            idat_len += len;
        }
        pos += 12 + (size_t)len;
    }
    if (!width || !height || !idat || width > 20000 || height > 20000)
        return 2;
    stride = width * bpp;
    raw_len = (uLongf)(stride + 1) * height;
    if (!(raw = malloc(raw_len)) || uncompress(raw, &raw_len, idat, (uLong)idat_len) != Z_OK ||
        raw_len != (uLongf)(stride + 1) * height) {
        fprintf(stderr, "png_count: bad image data\n");
        return 2;
    }
    for (uint32_t y = 0; y < height; y++) {
        unsigned char *row = raw + (size_t)y * (stride + 1) + 1, *up = y ? row - (stride + 1) : NULL;
        int filter = row[-1];
        for (uint32_t i = 0; i < stride; i++) {
            int a = i >= bpp ? row[i - bpp] : 0, b = up ? up[i] : 0, c = (up && i >= bpp) ? up[i - bpp] : 0;
            switch (filter) {
            case 1: row[i] = (unsigned char)(row[i] + a); break;
            case 2: row[i] = (unsigned char)(row[i] + b); break;
            case 3: row[i] = (unsigned char)(row[i] + (a + b) / 2); break;
            case 4: row[i] = (unsigned char)(row[i] + paeth(a, b, c)); break;
            default: break;
            }
        }
        for (uint32_t x = 0; x < width; x++) {
            const unsigned char *p = row + (size_t)x * bpp;
            if (((unsigned long)p[0] << 16 | (unsigned long)p[1] << 8 | p[2]) == want)
                count++;
        }
    }
    printf("%lu\n", count);
    free(raw);
    free(idat);
    free(file);
    return 0;
}
