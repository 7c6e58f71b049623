/* Operations helpers: Prometheus text rendering, histograms, the notify protocol, the audit log. */
#include "testutil.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "../../src/api/metrics.h"
#include "../../src/ops/ops.h"

static char *rendered(struct cm_prom *p)
{
    cm_buf_append(&p->out, "", 0);
    return p->out.data ? p->out.data : "";
}

static void test_prom_text(void **state)
{
    (void)state;
    struct cm_prom p = {.region = "r\"1", .cluster = "7", .is_leader = "true"};
    cm_prom_family(&p, "x_total", "counter", "a help\nwith a newline and \\");
    cm_prom_sample_u64(&p, "x_total", 18446744073709551615ull, NULL);
    cm_prom_sample(&p, "x_total", 2.5, "region", p.region, "path", "a\\b\nc", NULL);
    cm_prom_sample(&p, "x_total", 3, "k", "", NULL);
    assert_string_equal(rendered(&p), "# HELP x_total a help\\nwith a newline and \\\\\n"
                                      "# TYPE x_total counter\n"
                                      "x_total 18446744073709551615\n"
                                      "x_total{region=\"r\\\"1\",path=\"a\\\\b\\nc\"} 2.5\n"
                                      "x_total{k=\"\"} 3\n");
    cm_buf_free(&p.out);
}

static void test_histogram(void **state)
{
    (void)state;
    static const double bounds[] = {0.001, 0.01, 0.1};
    struct cm_hist h;
    cm_hist_init(&h, bounds, 3);
    cm_hist_observe(&h, 0.0005);
    cm_hist_observe(&h, 0.001); /* upper bounds are inclusive */
    cm_hist_observe(&h, 0.05);
    cm_hist_observe(&h, 7);
    struct cm_prom p = {0};
    cm_prom_hist(&p, "lat_seconds", &h, "route", "a", NULL);
    assert_string_equal(rendered(&p), "lat_seconds_bucket{route=\"a\",le=\"0.001\"} 2\n"
                                      "lat_seconds_bucket{route=\"a\",le=\"0.01\"} 2\n"
                                      "lat_seconds_bucket{route=\"a\",le=\"0.1\"} 3\n"
                                      "lat_seconds_bucket{route=\"a\",le=\"+Inf\"} 4\n"
                                      "lat_seconds_sum{route=\"a\"} 7.0515\n"
                                      "lat_seconds_count{route=\"a\"} 4\n");
    cm_buf_free(&p.out);
    struct cm_prom q = {0};
    cm_prom_hist(&q, "n", &h, NULL);
    assert_non_null(strstr(rendered(&q), "n_bucket{le=\"+Inf\"} 4\nn_sum 7.0515\nn_count 4\n"));
    cm_buf_free(&q.out);
}

static void test_notify(void **state)
{
    (void)state;
    unsetenv("NOTIFY_SOCKET");
    assert_int_equal(cm_notify("READY=1"), 1);
    setenv("NOTIFY_SOCKET", "relative/path", 1);
    assert_true(cm_notify("READY=1") < 0);

    char path[64];
    snprintf(path, sizeof path, "/tmp/cm-notify-%d", (int)getpid());
    unlink(path);
    int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    setenv("NOTIFY_SOCKET", path, 1);
    assert_int_equal(cm_notify("READY=1\nSTATUS=leader 1, term 2"), 0);
    char buf[128];
    ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
    assert_true(n > 0);
    buf[n] = '\0';
    assert_string_equal(buf, "READY=1\nSTATUS=leader 1, term 2");
    close(fd);
    unlink(path);

    /* the abstract namespace: "@name" */
    char abs_name[64];
    snprintf(abs_name, sizeof abs_name, "@cm-notify-test-%d", (int)getpid());
    fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    struct sockaddr_un sb = {.sun_family = AF_UNIX};
    size_t len = strlen(abs_name);
    memcpy(sb.sun_path, abs_name, len);
    sb.sun_path[0] = '\0';
    assert_int_equal(bind(fd, (struct sockaddr *)&sb, (socklen_t)(sizeof sb.sun_family + len)), 0);
    setenv("NOTIFY_SOCKET", abs_name, 1);
    assert_int_equal(cm_notify("STOPPING=1"), 0);
    n = recv(fd, buf, sizeof buf - 1, 0);
    assert_true(n > 0);
    buf[n] = '\0';
    assert_string_equal(buf, "STOPPING=1");
    close(fd);
    unsetenv("NOTIFY_SOCKET");
}

static void test_audit_file(void **state)
{
    (void)state;
    char dir[64], file[96], err[256];
    snprintf(dir, sizeof dir, "/tmp/cm-audit-%d/a/b", (int)getpid());
    snprintf(file, sizeof file, "%s/audit.log", dir);
    assert_false(cm_audit_enabled());
    cm_audit_write("dropped: not open", 17);
    assert_int_equal(cm_audit_open(dir, err, sizeof err), 0);
    assert_true(cm_audit_enabled());
    for (int i = 0; i < 1000; i++) {
        char line[64];
        int len = snprintf(line, sizeof line, "{\"n\":%d}", i);
        cm_audit_write(line, (size_t)len);
    }
    cm_audit_close(); /* writes everything queued */
    assert_false(cm_audit_enabled());
    FILE *f = fopen(file, "r");
    assert_non_null(f);
    char line[64];
    int count = 0;
    while (fgets(line, sizeof line, f)) {
        char want[64];
        snprintf(want, sizeof want, "{\"n\":%d}\n", count);
        assert_string_equal(line, want);
        count++;
    }
    fclose(f);
    assert_int_equal(count, 1000);
    uint64_t lines, dropped;
    cm_audit_counts(&lines, &dropped);
    assert_true(lines == 1000 && dropped == 0);
    /* a directory that cannot be created is an error naming it */
    assert_int_equal(cm_audit_open("/proc/no/such/dir", err, sizeof err), -1);
    assert_non_null(strstr(err, "/proc/no"));
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf /tmp/cm-audit-%d", (int)getpid());
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    cmt_quiet();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prom_text),
        cmocka_unit_test(test_histogram),
        cmocka_unit_test(test_notify),
        cmocka_unit_test(test_audit_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
