/* For tests/abi.test: the version macros of the header and weft_version() of the library,
 * printed as "WEFT_VERSION MAJOR.MINOR.PATCH weft_version()". */
#include <stdio.h>
#include <weft.h>

#if !WEFT_VERSION_AT_LEAST(0, 0, 0) || WEFT_VERSION_AT_LEAST(WEFT_VERSION_MAJOR + 1, 0, 0)
#error "WEFT_VERSION_AT_LEAST is wrong"
#endif

int main(void)
{
    printf("%s %d.%d.%d %s\n", WEFT_VERSION, WEFT_VERSION_MAJOR, WEFT_VERSION_MINOR,
           WEFT_VERSION_PATCH, weft_version());
    return 0;
}
