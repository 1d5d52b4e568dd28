/* limits.c: the table behind limits.h. Values are stored atomically so that readers on any
 * thread see a consistent value after configuration. Tested by tests/common/test_limits.c. */
#define SHOAL_LOG_SUBSYS "limits"
#include "common/limits.h"

#include <stdatomic.h>
#include <string.h>

static const shoal_limit_info table[SHOAL_LIMIT_COUNT] = {
    [SHOAL_LIMIT_SAFETENSORS_HEADER_BYTES] = {"safetensors_header_bytes", 100u << 20, 1u << 30},
    [SHOAL_LIMIT_SAFETENSORS_TENSORS] = {"safetensors_tensors", 65536, 1u << 20},
    [SHOAL_LIMIT_TENSOR_ELEMENTS] = {"tensor_elements", 1ull << 36, 1ull << 40},
    [SHOAL_LIMIT_JSON_FILE_BYTES] = {"json_file_bytes", 64u << 20, 1u << 30},
    [SHOAL_LIMIT_READ_FILE_BYTES] = {"read_file_bytes", 1ull << 30, 16ull << 30},
    [SHOAL_LIMIT_SHARD_TOKENS] = {"shard_tokens", 1ull << 28, 1ull << 36},
    [SHOAL_LIMIT_DATASET_SHARDS] = {"dataset_shards", 4096, 1u << 20},
    [SHOAL_LIMIT_JSONL_LINE_BYTES] = {"jsonl_line_bytes", 1u << 20, 256u << 20},
    [SHOAL_LIMIT_COMM_TIMEOUT_MS] = {"comm_timeout_ms", 30000, 86400000},
    [SHOAL_LIMIT_COMM_RANKS] = {"comm_ranks", 4096, 65536},
    [SHOAL_LIMIT_TOKENIZER_FILE_BYTES] = {"tokenizer_file_bytes", 64u << 20, 1u << 30},
    [SHOAL_LIMIT_TOKENIZER_VOCAB] = {"tokenizer_vocab", 1u << 20, 1u << 24},
    [SHOAL_LIMIT_TOKENIZER_MERGES] = {"tokenizer_merges", 1u << 20, 1u << 24},
    [SHOAL_LIMIT_RPC_MESSAGE_BYTES] = {"rpc_message_bytes", 16u << 20, 1u << 30},
    [SHOAL_LIMIT_RPC_INFLIGHT_CALLS] = {"rpc_inflight_calls", 4096, 65536},
    [SHOAL_LIMIT_RPC_HANDLER_THREADS] = {"rpc_handler_threads", 64, 1024},
    [SHOAL_LIMIT_PEM_FILE_BYTES] = {"pem_file_bytes", 1u << 20, 16u << 20},
    [SHOAL_LIMIT_MODEL_PARAMS] = {"model_params", 1ull << 32, 1ull << 36},
    [SHOAL_LIMIT_JOB_SPEC_BYTES] = {"job_spec_bytes", 256u << 10, 4u << 20},
    [SHOAL_LIMIT_JOB_LOG_LINES] = {"job_log_lines", 20000, 10000000},
    [SHOAL_LIMIT_JOB_LOG_LINE_BYTES] = {"job_log_line_bytes", 4096, 1u << 20},
    [SHOAL_LIMIT_PENDING_JOBS] = {"pending_jobs", 100000, 10000000},
    [SHOAL_LIMIT_RPC_CQ_THREADS] = {"rpc_cq_threads", 1, 64},
};

static _Atomic uint64_t current[SHOAL_LIMIT_COUNT];
static atomic_int initialised;

static void init_once(void) {
    if (atomic_load(&initialised)) return;
    for (int i = 0; i < SHOAL_LIMIT_COUNT; i++) {
        uint64_t zero = 0;
        atomic_compare_exchange_strong(&current[i], &zero, table[i].def);
    }
    atomic_store(&initialised, 1);
}

uint64_t shoal_limit(shoal_limit_id id) {
    if ((unsigned)id >= SHOAL_LIMIT_COUNT) return 0;
    init_once();
    return atomic_load(&current[id]);
}

const shoal_limit_info *shoal_limit_describe(shoal_limit_id id) {
    if ((unsigned)id >= SHOAL_LIMIT_COUNT) return NULL;
    return &table[id];
}

shoal_status shoal_limit_set(shoal_limit_id id, uint64_t value) {
    SHOAL_REQUIRE((unsigned)id < SHOAL_LIMIT_COUNT, SHOAL_ERR_INVALID_ARG, "unknown limit id %d",
                  (int)id);
    SHOAL_REQUIRE(value > 0, SHOAL_ERR_INVALID_ARG, "limit %s must be positive", table[id].name);
    SHOAL_REQUIRE(value <= table[id].ceiling, SHOAL_ERR_LIMIT,
                  "limit %s=%llu is above its ceiling %llu", table[id].name,
                  (unsigned long long)value, (unsigned long long)table[id].ceiling);
    init_once();
    atomic_store(&current[id], value);
    return SHOAL_OK;
}

shoal_status shoal_limit_find(const char *name, shoal_limit_id *id) {
    for (int i = 0; i < SHOAL_LIMIT_COUNT; i++) {
        if (name && strcmp(name, table[i].name) == 0) {
            *id = (shoal_limit_id)i;
            return SHOAL_OK;
        }
    }
    return SHOAL_ERR_NOT_FOUND;
}
