/* test_jobspec_pb.c: proto/jobspec_pb.c — job specs survive struct -> protobuf -> bytes ->
 * protobuf -> struct unchanged (finetune and command), and a message that breaks a rule is
 * refused by from_pb with the same statuses the JSON path gives, leaving the struct freed. */
#include <stdio.h>
#include <string.h>

#include "proto/jobspec_pb.h"
#include "test.h"

static char data_dir[1024];

static void roundtrip_file(const char *name) {
    char p[1200];
    snprintf(p, sizeof p, "%s/%s", data_dir, name);
    shoal_job_spec s, back;
    CHECK_EQ_INT(shoal_job_spec_load_file(p, &s), SHOAL_OK);
    shoal_job_spec_pb h;
    shoal_job_spec_to_pb(&s, &h);
    size_t n = shoal__v1__job_spec__get_packed_size(&h.spec);
    uint8_t *buf = malloc(n + 1);
    shoal__v1__job_spec__pack(&h.spec, buf);
    Shoal__V1__JobSpec *m = shoal__v1__job_spec__unpack(NULL, n, buf);
    CHECK(m != NULL);
    if (m) {
        CHECK_EQ_INT(shoal_job_spec_from_pb(m, "rt", &back), SHOAL_OK);
        CHECK(shoal_job_spec_equal(&s, &back));
        shoal_job_spec_free(&back);
        shoal__v1__job_spec__free_unpacked(m, NULL);
    }
    free(buf);
    shoal_job_spec_free(&s);
}

static void test_roundtrip(void) {
    roundtrip_file("finetune.json");
    roundtrip_file("command.json");
}

static void test_refusals(void) {
    char *argv_ok[] = {"true"};
    char *argv_bad[] = {"a\tb"};
    shoal_job_spec s;
    Shoal__V1__JobSpec m = SHOAL__V1__JOB_SPEC__INIT;
    Shoal__V1__CommandSpec c = SHOAL__V1__COMMAND_SPEC__INIT;
    c.argv = argv_ok;
    c.n_argv = 1;
    m.ranks = 1;
    /* no body */
    CHECK_EQ_INT(shoal_job_spec_from_pb(&m, "t", &s), SHOAL_ERR_INVALID_ARG);
    m.body_case = SHOAL__V1__JOB_SPEC__BODY_COMMAND;
    m.command = &c;
    CHECK_EQ_INT(shoal_job_spec_from_pb(&m, "t", &s), SHOAL_OK);
    CHECK_EQ_INT(s.kind, SHOAL_JOB_KIND_COMMAND); /* inferred from the body */
    CHECK(s.name == NULL && s.output_dir == NULL); /* "" is absent */
    shoal_job_spec_free(&s);
    /* unknown enum numbers, mismatched kind, out-of-range numbers */
    m.launcher = (Shoal__V1__LauncherKind)9;
    CHECK_EQ_INT(shoal_job_spec_from_pb(&m, "t", &s), SHOAL_ERR_INVALID_ARG);
    m.launcher = SHOAL__V1__LAUNCHER_KIND__LAUNCHER_LOCAL;
    m.kind = SHOAL__V1__JOB_KIND__JOB_KIND_FINETUNE;
    CHECK_EQ_INT(shoal_job_spec_from_pb(&m, "t", &s), SHOAL_ERR_INVALID_ARG);
    m.kind = (Shoal__V1__JobKind)77;
    CHECK_EQ_INT(shoal_job_spec_from_pb(&m, "t", &s), SHOAL_ERR_INVALID_ARG);
    m.kind = SHOAL__V1__JOB_KIND__JOB_KIND_COMMAND;
    m.ranks = -5;
    CHECK_EQ_INT(shoal_job_spec_from_pb(&m, "t", &s), SHOAL_ERR_INVALID_ARG);
    m.ranks = 2147483647;
    CHECK_EQ_INT(shoal_job_spec_from_pb(&m, "t", &s), SHOAL_ERR_INVALID_ARG);
    m.ranks = 1;
    m.time_limit_s = -1;
    CHECK_EQ_INT(shoal_job_spec_from_pb(&m, "t", &s), SHOAL_ERR_INVALID_ARG);
    m.time_limit_s = 0;
    m.name = "bad name!";
    CHECK_EQ_INT(shoal_job_spec_from_pb(&m, "t", &s), SHOAL_ERR_INVALID_ARG);
    m.name = "";
    c.argv = argv_bad;
    CHECK_EQ_INT(shoal_job_spec_from_pb(&m, "t", &s), SHOAL_ERR_INVALID_ARG);
    c.argv = argv_ok;
    c.n_argv = 100000; /* absurd count: refused before anything is copied */
    CHECK_EQ_INT(shoal_job_spec_from_pb(&m, "t", &s), SHOAL_ERR_INVALID_ARG);
    c.n_argv = 1;
    /* finetune body without paths; serve body */
    Shoal__V1__FinetuneSpec f = SHOAL__V1__FINETUNE_SPEC__INIT;
    Shoal__V1__Hyperparameters hy = SHOAL__V1__HYPERPARAMETERS__INIT;
    f.hyper = &hy;
    m.kind = SHOAL__V1__JOB_KIND__JOB_KIND_FINETUNE;
    m.body_case = SHOAL__V1__JOB_SPEC__BODY_FINETUNE;
    m.finetune = &f;
    m.output_dir = "/o";
    CHECK_EQ_INT(shoal_job_spec_from_pb(&m, "t", &s), SHOAL_ERR_INVALID_ARG);
    f.base_model_dir = "/m";
    f.dataset_dir = "/d";
    CHECK_EQ_INT(shoal_job_spec_from_pb(&m, "t", &s), SHOAL_OK);
    shoal_job_spec_free(&s);
    hy.lr_schedule = "warmup-cosine";
    CHECK_EQ_INT(shoal_job_spec_from_pb(&m, "t", &s), SHOAL_ERR_INVALID_ARG);
    hy.lr_schedule = "linear";
    hy.learning_rate = 1.0 / 0.0;
    CHECK_EQ_INT(shoal_job_spec_from_pb(&m, "t", &s), SHOAL_ERR_INVALID_ARG);
    hy.learning_rate = 0.001;
    Shoal__V1__ServeSpec sv = SHOAL__V1__SERVE_SPEC__INIT;
    m.kind = SHOAL__V1__JOB_KIND__JOB_KIND_UNSPECIFIED;
    m.body_case = SHOAL__V1__JOB_SPEC__BODY_SERVE;
    m.serve = &sv;
    CHECK_EQ_INT(shoal_job_spec_from_pb(&m, "t", &s), SHOAL_ERR_UNSUPPORTED);
    CHECK(s.name == NULL && s.argv == NULL && s.output_dir == NULL);
    CHECK_EQ_INT(shoal_job_spec_from_pb(NULL, "t", &s), SHOAL_ERR_INVALID_ARG);
}

int main(void) {
    const char *src = getenv("SHOAL_SOURCE_DIR");
    snprintf(data_dir, sizeof data_dir, "%s/tests/data/jobspec", src ? src : ".");
    shoal_log_set_level(SHOAL_LOG_WARN);
    TEST_RUN(test_roundtrip);
    TEST_RUN(test_refusals);
    return TEST_EXIT();
}
