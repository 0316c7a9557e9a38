#define _GNU_SOURCE
#include "berth_sys.h"

#include <getopt.h>
#include <string.h>

int berth_getopt_long(int argc, char **argv, const char *optstring,
                      const struct berth_long_option *longs, size_t count,
                      const char **argument) {
    struct option table[17];
    if (count > 16) count = 16;
    for (size_t i = 0; i < count; i++) {
        table[i].name = longs[i].name;
        table[i].has_arg = longs[i].takes_argument ? required_argument : no_argument;
        table[i].flag = NULL;
        table[i].val = longs[i].short_name;
    }
    memset(&table[count], 0, sizeof table[count]);
    int code = getopt_long(argc, argv, optstring, table, NULL);
    *argument = optarg;
    return code;
}

void berth_getopt_reset(void) {
    optind = 0;  // glibc: 0 re-initialises the scanner completely
    opterr = 1;
}

int berth_getopt_index(void) {
    return optind;
}
