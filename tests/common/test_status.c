/* test_status.c: status names, log level parsing, and the limits table. */
#include "common/limits.h"
#include "common/status.h"
#include "test.h"

static void test_status_names(void) {
    CHECK_STR(shoal_status_str(SHOAL_OK), "ok");
    CHECK_STR(shoal_status_str(SHOAL_ERR_FORMAT), "malformed data");
    for (int i = 0; i < SHOAL_STATUS_COUNT; i++) {
        const char *s = shoal_status_str((shoal_status)i);
        CHECK(s && strcmp(s, "unknown status") != 0);
        for (int j = 0; j < i; j++) CHECK(strcmp(s, shoal_status_str((shoal_status)j)) != 0);
    }
    CHECK_STR(shoal_status_str((shoal_status)999), "unknown status");
}

static shoal_status fails_with(shoal_status s) { return s; }
static shoal_status chain(shoal_status s) {
    SHOAL_CHECK(fails_with(s));
    return SHOAL_OK;
}
static int cleanup_ran;
static shoal_status chain_goto(shoal_status s) {
    shoal_status st = SHOAL_OK;
    SHOAL_CHECK_GOTO(fails_with(s));
    SHOAL_REQUIRE_GOTO(0, SHOAL_ERR_INTERNAL, "expected failure in test");
cleanup:
    cleanup_ran = 1;
    return st;
}

static void test_check_macros(void) {
    CHECK_EQ_INT(chain(SHOAL_OK), SHOAL_OK);
    CHECK_EQ_INT(chain(SHOAL_ERR_IO), SHOAL_ERR_IO);
    cleanup_ran = 0;
    CHECK_EQ_INT(chain_goto(SHOAL_ERR_TIMEOUT), SHOAL_ERR_TIMEOUT);
    CHECK(cleanup_ran);
    cleanup_ran = 0;
    CHECK_EQ_INT(chain_goto(SHOAL_OK), SHOAL_ERR_INTERNAL);
    CHECK(cleanup_ran);
}

static void test_log_levels(void) {
    CHECK_EQ_INT(shoal_log_parse_level("debug"), SHOAL_LOG_DEBUG);
    CHECK_EQ_INT(shoal_log_parse_level("WARN"), SHOAL_LOG_WARN);
    CHECK_EQ_INT(shoal_log_parse_level("warning"), SHOAL_LOG_WARN);
    CHECK_EQ_INT(shoal_log_parse_level("Error"), SHOAL_LOG_ERROR);
    CHECK_EQ_INT(shoal_log_parse_level("loud"), -1);
    CHECK_EQ_INT(shoal_log_parse_level(NULL), -1);
    shoal_log_set_level(SHOAL_LOG_DEBUG);
    CHECK_EQ_INT(shoal_log_get_level(), SHOAL_LOG_DEBUG);
    shoal_log_set_role("rank 3");
    SHOAL_LOG_DEBUG("a debug line from the test (rank prefix expected)");
    shoal_log_set_role(NULL);
    shoal_log_set_level(SHOAL_LOG_ERROR);
}

static void test_limits(void) {
    for (int i = 0; i < SHOAL_LIMIT_COUNT; i++) {
        const shoal_limit_info *info = shoal_limit_describe((shoal_limit_id)i);
        CHECK(info && info->name && info->def > 0 && info->def <= info->ceiling);
        CHECK_EQ_INT(shoal_limit((shoal_limit_id)i), info->def);
        shoal_limit_id id;
        CHECK_EQ_INT(shoal_limit_find(info->name, &id), SHOAL_OK);
        CHECK_EQ_INT(id, i);
    }
    const shoal_limit_info *h = shoal_limit_describe(SHOAL_LIMIT_JSON_FILE_BYTES);
    CHECK_EQ_INT(shoal_limit_set(SHOAL_LIMIT_JSON_FILE_BYTES, h->ceiling + 1), SHOAL_ERR_LIMIT);
    CHECK_EQ_INT(shoal_limit(SHOAL_LIMIT_JSON_FILE_BYTES), h->def);
    CHECK_EQ_INT(shoal_limit_set(SHOAL_LIMIT_JSON_FILE_BYTES, 0), SHOAL_ERR_INVALID_ARG);
    CHECK_EQ_INT(shoal_limit_set(SHOAL_LIMIT_JSON_FILE_BYTES, 100), SHOAL_OK);
    CHECK_EQ_INT(shoal_limit(SHOAL_LIMIT_JSON_FILE_BYTES), 100);
    CHECK_EQ_INT(shoal_limit_set(SHOAL_LIMIT_JSON_FILE_BYTES, h->def), SHOAL_OK);
    shoal_limit_id id;
    CHECK_EQ_INT(shoal_limit_find("no_such_limit", &id), SHOAL_ERR_NOT_FOUND);
    CHECK(shoal_limit_describe(SHOAL_LIMIT_COUNT) == NULL);
    CHECK_EQ_INT(shoal_limit_set(SHOAL_LIMIT_COUNT, 1), SHOAL_ERR_INVALID_ARG);
}

int main(void) {
    shoal_log_set_level(SHOAL_LOG_ERROR);
    TEST_RUN(test_status_names);
    TEST_RUN(test_check_macros);
    TEST_RUN(test_log_levels);
    TEST_RUN(test_limits);
    return TEST_EXIT();
}
