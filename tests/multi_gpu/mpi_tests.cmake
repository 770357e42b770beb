# The multi-GPU scripts (scripts/multi-gpu) as far as a machine without GPUs runs them: the
# report's verdicts on made-up runs, the whole of all.sh on 2 CPU ranks with tiny models (every
# script, its JSON from zt's real output, the closing table), and Open MPI gathered by
# scripts/gpu-deps and relocated, with this machine's own hidden (skipped without unshare).
set(ZT_MULTI_GPU_DIR ${CMAKE_SOURCE_DIR}/scripts/multi-gpu)
add_test(NAME multi_gpu_report COMMAND python3 -m unittest test_report WORKING_DIRECTORY ${ZT_MULTI_GPU_DIR})
add_test(NAME multi_gpu_dry_run COMMAND bash ${ZT_MULTI_GPU_DIR}/all.sh 2 --dry-run)
set_tests_properties(multi_gpu_dry_run PROPERTIES TIMEOUT 600 PROCESSORS 2
  ENVIRONMENT "ZT_BUILD_DIR=${CMAKE_BINARY_DIR};ZT_SKIP_BUILD=1;ZT_RESULTS=${CMAKE_BINARY_DIR}/multi-gpu-dry-run/results")
add_test(NAME multi_gpu_relocated_mpi COMMAND bash ${ZT_MULTI_GPU_DIR}/check-relocated-mpi.sh ${CMAKE_BINARY_DIR})
set_tests_properties(multi_gpu_relocated_mpi PROPERTIES TIMEOUT 600 PROCESSORS 2 SKIP_RETURN_CODE 77)
