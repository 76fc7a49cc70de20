/* SPDX-License-Identifier: MIT */
/*
 * fuzz.h - what every harness in tests/fuzz/ shares.
 *
 * Each harness defines LLVMFuzzerTestOneInput().  Built with -Dfuzz=true
 * it links libFuzzer; in every other build it links replay.c instead, so
 * that the normal test suite runs the checked-in corpus (regression
 * inputs included) through the same code.
 */
#ifndef IMGFS_FUZZ_H
#define IMGFS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * A broken invariant of the code under test (not of the input): abort so
 * that libFuzzer records the input as a crash and a replay fails.
 */
#define FUZZ_CHECK(cond)                                                  \
	do {                                                              \
		if (!(cond)) {                                            \
			fprintf(stderr, "%s:%d: check failed: %s\n",      \
				__FILE__, __LINE__, #cond);               \
			abort();                                          \
		}                                                         \
	} while (0)

#endif
