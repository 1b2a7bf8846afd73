/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Timing helpers shared by the cs614 benchmarks.
 */
#ifndef CS614_BENCH_H
#define CS614_BENCH_H

#include <stdlib.h>
#include <time.h>

/* CLOCK_MONOTONIC in microseconds. */
static inline double cs614_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static inline int cs614_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* The median of the n samples of v, which it sorts. */
static inline double cs614_median(double *v, int n)
{
	qsort(v, n, sizeof(*v), cs614_cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

#endif /* CS614_BENCH_H */
