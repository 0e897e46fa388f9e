#!/bin/bash
# The TIPC chain (PaddlePaddle's "train, infer, one pipeline" check) on test_tipc/lite_data:
#
#   bash test_tipc/test_train_inference_python.sh test_tipc/configs/aae/train_infer_python.txt lite_train_lite_infer
#
# Stages: the lite split, training, evaluation, export, Paddle Inference, the dynamic model
# (predict.py) and the comparison of the two. Each writes <output>/<stage>.log and one line
# "Run successfully ..." or "Run failed ..." to <output>/results_python.log, where <output> is
# ${TIPC_OUTPUT:-test_tipc/output}/<model_name>/<mode>. Exit code 1 if any stage failed.
cd "$(dirname "$0")/.." || exit 1
source test_tipc/common_func.sh

FILENAME=$1
MODE=$2
if [ ! -f "${FILENAME}" ] || [ "${MODE}" != "lite_train_lite_infer" ]; then
    echo "error: usage: bash test_tipc/test_train_inference_python.sh CONFIG lite_train_lite_infer (CONFIG: test_tipc/configs/<model>/train_infer_python.txt; the only mode is lite_train_lite_infer)" >&2
    exit 2
fi

IFS=$'\n' read -d '' -r -a lines < "${FILENAME}"
model_name=$(func_parser_value "${lines[1]}")
python=$(func_parser_value "${lines[2]}")
device_key=$(func_parser_key "${lines[4]}")
device_value=$(func_parser_value "${lines[4]}")
epoch_key=$(func_parser_key "${lines[5]}")
epoch_value=$(func_parser_params "${lines[5]}" "${MODE}")
model_dir_key=$(func_parser_key "${lines[6]}")
model_dir_value=$(func_parser_value "${lines[6]}")
batch_key=$(func_parser_key "${lines[7]}")
batch_value=$(func_parser_params "${lines[7]}" "${MODE}")
n_train_key=$(func_parser_key "${lines[8]}")
n_train_value=$(func_parser_params "${lines[8]}" "${MODE}")
train_model_name=$(func_parser_value "${lines[9]}")
data_key=$(func_parser_key "${lines[10]}")
data_value=$(func_parser_value "${lines[10]}")
norm_train=$(func_parser_value "${lines[13]}")
eval_py=$(func_parser_value "${lines[16]}")
save_dir_key=$(func_parser_key "${lines[19]}")
save_dir_value=$(func_parser_value "${lines[19]}")
checkpoint_key=$(func_parser_key "${lines[20]}")
norm_export=$(func_parser_value "${lines[21]}")
predict_py=$(func_parser_value "${lines[23]}")
inference_py=$(func_parser_value "${lines[25]}")
infer_model_key=$(func_parser_key "${lines[26]}")
infer_model_value=$(func_parser_value "${lines[26]}")
image_key=$(func_parser_key "${lines[27]}")
image_value=$(func_parser_value "${lines[27]}")
save_npy_key=$(func_parser_key "${lines[28]}")
save_npy_value=$(func_parser_value "${lines[28]}")
compare_py=$(func_parser_value "${lines[30]}")

OUTPUT=${TIPC_OUTPUT:-test_tipc/output}/${model_name}/${MODE}
rm -rf "${OUTPUT}"
mkdir -p "${OUTPUT}"
RESULTS=${OUTPUT}/results_python.log
: > "${RESULTS}"
failures=0
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

# run_stage NAME COMMAND...: the command's output to <output>/NAME.log, one results line
function run_stage(){
    local name=$1
    shift
    "$@" > "${OUTPUT}/${name}.log" 2>&1
    local status=$?
    status_check ${status} "$*" "${RESULTS}" "${model_name}"
    if [ ${status} -ne 0 ]; then
        failures=$((failures + 1))
        tail -n 3 "${OUTPUT}/${name}.log" >&2
    fi
}

data_dir=${OUTPUT}/${data_value}
model_dir=${OUTPUT}/${model_dir_value}
dirs="--images_dir ${OUTPUT}/images --logs_dir ${OUTPUT}/logs"
checkpoint=${model_dir}/${train_model_name}
inference_dir=${OUTPUT}/${save_dir_value}

run_stage prepare ${python} test_tipc/make_lite_data.py --split "${data_dir}"
run_stage train ${python} ${norm_train} ${device_key} ${device_value} ${epoch_key} ${epoch_value} \
    ${batch_key} ${batch_value} ${n_train_key} ${n_train_value} ${data_key} "${data_dir}" \
    ${model_dir_key} "${model_dir}" ${dirs}
run_stage eval ${python} ${eval_py} ${checkpoint_key} "${checkpoint}" ${data_key} "${data_dir}" \
    ${device_key} ${device_value} ${dirs}
run_stage export ${python} ${norm_export} ${checkpoint_key} "${checkpoint}" \
    ${save_dir_key} "${inference_dir}" ${data_key} "${data_dir}" ${device_key} ${device_value}
run_stage infer ${python} ${inference_py} ${infer_model_key} "${OUTPUT}/${infer_model_value}" \
    ${image_key} "${image_value}" ${save_npy_key} "${OUTPUT}/${save_npy_value}" \
    --output_dir "${OUTPUT}/images"
run_stage predict ${python} ${predict_py} ${checkpoint_key} "${checkpoint}" ${image_key} \
    "${image_value}" ${save_npy_key} "${OUTPUT}/predict_recon.npy" ${data_key} "${data_dir}" \
    ${device_key} ${device_value} --output_dir "${OUTPUT}/images"
run_stage compare ${python} ${compare_py} "${OUTPUT}/predict_recon.npy" "${OUTPUT}/${save_npy_value}"

if [ ${failures} -ne 0 ]; then
    echo "${failures} stage(s) failed: see ${RESULTS}" >&2
    exit 1
fi
echo "all stages passed: ${RESULTS}"
