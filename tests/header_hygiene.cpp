// Every public header, compiled as C++ (see tests/CMakeLists.txt).
#include "qkc/qkc.h"

int qkc_header_hygiene_cxx();
int qkc_header_hygiene_cxx()
{
    qkc_spec_info info{};
    info.n = 1;
    return static_cast<int>(info.n) + QKC_VERSION_MAJOR + static_cast<int>(QKC_OK);
}
