/* test_schedule.c: the LR schedule (worker/train/schedule.h) against values computed by hand
 * (lr_max 6e-4, min ratio 0.1, warmup 10, total 110), its edge cases and argument checks. */
#include "test.h"
#include "worker/train/schedule.h"

static void test_hand_values(void) {
    shoal_lr_schedule s = {6e-4, 0.1, 10, 110};
    CHECK_EQ_INT(shoal_lr_schedule_check(&s), SHOAL_OK);
    CHECK_NEAR(shoal_lr_schedule_at(&s, 0), 6e-5, 1e-12);  /* 6e-4 * 1/10 */
    CHECK_NEAR(shoal_lr_schedule_at(&s, 4), 3e-4, 1e-12);  /* 6e-4 * 5/10 */
    CHECK_NEAR(shoal_lr_schedule_at(&s, 9), 6e-4, 1e-12);  /* end of warmup */
    CHECK_NEAR(shoal_lr_schedule_at(&s, 10), 6e-4, 1e-12); /* cosine at p = 0 */
    /* p = 0.25: 6e-5 + 5.4e-4 * (1 + cos(pi/4)) / 2 = 6e-5 + 5.4e-4 * 0.8535533906 */
    CHECK_NEAR(shoal_lr_schedule_at(&s, 35), 5.2091883092e-4, 1e-12);
    CHECK_NEAR(shoal_lr_schedule_at(&s, 60), 3.3e-4, 1e-12); /* p = 0.5: halfway */
    /* p = 0.75: 6e-5 + 5.4e-4 * 0.1464466094 */
    CHECK_NEAR(shoal_lr_schedule_at(&s, 85), 1.3908116908e-4, 1e-12);
    CHECK_NEAR(shoal_lr_schedule_at(&s, 109), 6.0132e-5, 1e-8); /* p = 0.99 */
    CHECK_NEAR(shoal_lr_schedule_at(&s, 110), 6e-5, 1e-12);
    CHECK_NEAR(shoal_lr_schedule_at(&s, 100000), 6e-5, 1e-12);
    for (int64_t k = 10; k < 120; k++)
        CHECK(shoal_lr_schedule_at(&s, k + 1) <= shoal_lr_schedule_at(&s, k));
    for (int64_t k = 0; k < 9; k++)
        CHECK(shoal_lr_schedule_at(&s, k + 1) > shoal_lr_schedule_at(&s, k));
}

static void test_edges(void) {
    shoal_lr_schedule nowarm = {1e-3, 0.0, 0, 4};
    CHECK_EQ_INT(shoal_lr_schedule_check(&nowarm), SHOAL_OK);
    CHECK_NEAR(shoal_lr_schedule_at(&nowarm, 0), 1e-3, 1e-15);
    CHECK_NEAR(shoal_lr_schedule_at(&nowarm, 2), 5e-4, 1e-15); /* p = 0.5, floor 0 */
    CHECK_NEAR(shoal_lr_schedule_at(&nowarm, 4), 0.0, 1e-15);
    shoal_lr_schedule flat = {2e-4, 1.0, 3, 10};
    CHECK_NEAR(shoal_lr_schedule_at(&flat, 1), 2e-4 * 2 / 3, 1e-15);
    for (int k = 3; k < 20; k++)
        CHECK_NEAR(shoal_lr_schedule_at(&flat, k), 2e-4, 1e-15);
    shoal_lr_schedule all_warm = {1e-3, 0.1, 5, 5};
    CHECK_EQ_INT(shoal_lr_schedule_check(&all_warm), SHOAL_OK);
    CHECK_NEAR(shoal_lr_schedule_at(&all_warm, 4), 1e-3, 1e-15);
    CHECK_NEAR(shoal_lr_schedule_at(&all_warm, 5), 1e-4, 1e-15);
}

static void test_rejects(void) {
    shoal_lr_schedule bad[] = {
        {0, 0.1, 1, 10},     {-1e-3, 0.1, 1, 10}, {NAN, 0.1, 1, 10},
        {1e-3, -0.1, 1, 10}, {1e-3, 1.5, 1, 10},  {1e-3, 0.1, -1, 10},
        {1e-3, 0.1, 11, 10}, {1e-3, 0.1, 0, 0},   {INFINITY, 0.1, 1, 10},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_EQ_INT(shoal_lr_schedule_check(&bad[i]), SHOAL_ERR_INVALID_ARG);
}

int main(void) {
    TEST_RUN(test_hand_values);
    TEST_RUN(test_edges);
    TEST_RUN(test_rejects);
    return TEST_EXIT();
}
