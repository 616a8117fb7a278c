#include <stdio.h>
int main(void) { puts("qkc"); return 0; }
