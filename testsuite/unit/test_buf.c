#include "config.h"
#include "test.h"
int main(void) { return test_done(); }
