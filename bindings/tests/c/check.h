/*
 * CHECK and ASSERT for the C test programs: on failure, print where and why
 * (with the result code's message) and exit 1.
 */
#ifndef CONCORDKV_TEST_CHECK_H
#define CONCORDKV_TEST_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#include "concordkv_topology.h"

#define CHECK(expr, want)                                                          \
    do {                                                                           \
        concordkv_result got_ = (expr);                                            \
        if (got_ != (want)) {                                                      \
            char msg_[256];                                                        \
            size_t n_ = 0;                                                         \
            concordkv_result_message(got_, msg_, sizeof msg_, &n_);                \
            fprintf(stderr, "%s:%d: %s gave %u (%s), expected %u\n", __FILE__,      \
                    __LINE__, #expr, (unsigned)got_, msg_, (unsigned)(want));      \
            exit(1);                                                               \
        }                                                                          \
    } while (0)

#define ASSERT(cond)                                                               \
    do {                                                                           \
        if (!(cond)) {                                                             \
            fprintf(stderr, "%s:%d: assertion failed: %s\n", __FILE__, __LINE__,   \
                    #cond);                                                        \
            exit(1);                                                               \
        }                                                                          \
    } while (0)

#endif
