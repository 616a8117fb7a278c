/* Every public header, compiled as strict C11 (see tests/CMakeLists.txt). */
#include "qkc/qkc.h"

int qkc_header_hygiene_c(void);
int qkc_header_hygiene_c(void)
{
    qkc_spec_info info;
    info.n = 1;
    return (int)info.n + QKC_VERSION_MAJOR + (int)QKC_OK;
}
