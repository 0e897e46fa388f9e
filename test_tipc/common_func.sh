#!/bin/bash
# Helpers of test_train_inference_python.sh: the "key:value" lines of a
# train_infer_python.txt (the layout of PaddlePaddle's TIPC guide), and one results line per stage.

function func_parser_key(){
    local strs=$1
    echo "${strs%%:*}"
}

function func_parser_value(){
    local strs=$1
    echo "${strs#*:}"
}

# "key:mode1=v1|mode2=v2" -> the value of MODE (or the whole value when it names no mode)
function func_parser_params(){
    local strs=$1
    local MODE=$2
    local value
    value=$(func_parser_value "${strs}")
    if [[ ${value} != *"="* ]]; then
        echo "${value}"
        return
    fi
    local IFS="|"
    for pair in ${value}; do
        if [[ ${pair%%=*} = "${MODE}" ]]; then
            echo "${pair#*=}"
            return
        fi
    done
}

# status_check EXIT_CODE COMMAND RESULTS_LOG MODEL_NAME: one success or failure line
function status_check(){
    local last_status=$1
    local run_command=$2
    local run_log=$3
    local model_name=$4
    if [ "${last_status}" -eq 0 ]; then
        echo "Run successfully with command - ${model_name} - ${run_command}!" | tee -a "${run_log}"
    else
        echo "Run failed with command - ${model_name} - ${run_command}!" | tee -a "${run_log}"
    fi
}
