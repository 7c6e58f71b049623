/* Time formatting; see timeutil.h. */
#include "timeutil.h"

#include <stdio.h>

void cm_format_rfc3339(int64_t unix_ns, char *out, size_t cap)
{
    if (unix_ns == 0) {
        snprintf(out, cap, "0001-01-01T00:00:00Z");
        return;
    }
    time_t sec = (time_t)(unix_ns / 1000000000LL);
    long nsec = (long)(unix_ns % 1000000000LL);
    if (nsec < 0) {
        nsec += 1000000000L;
        sec -= 1;
    }
    struct tm tm;
    gmtime_r(&sec, &tm);
    if (nsec == 0)
        snprintf(out, cap, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    else {
        /* Go trims trailing zeros of the fraction */
        char frac[16];
        snprintf(frac, sizeof frac, "%09ld", nsec);
        int n = 9;
        while (n > 1 && frac[n - 1] == '0')
            frac[--n] = '\0';
        snprintf(out, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%sZ", tm.tm_year + 1900, tm.tm_mon + 1,
                 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
    }
}
