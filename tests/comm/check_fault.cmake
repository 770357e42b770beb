# Runs `zt launch --num_procs NP -- PROGRAM MODE` with a short communication timeout and checks
# that the launch fails, fast, with EXPECT_COUNT ranks printing the timeout error.
# cmake -DZT=... -DPROGRAM=... -DMODE=... -DNP=... -DTIMEOUT_S=... -DEXPECT_COUNT=... -P check_fault.cmake
set(ENV{ZT_COMM_TIMEOUT_S} ${TIMEOUT_S})
string(TIMESTAMP t0 "%s")
execute_process(COMMAND ${ZT} launch --num_procs ${NP} -- ${PROGRAM} ${MODE}
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT 120)
string(TIMESTAMP t1 "%s")
math(EXPR elapsed "${t1} - ${t0}")
message("${err}")
message("zt launch exited with ${rc} after ${elapsed} s")
if(rc EQUAL 0)
  message(FATAL_ERROR "the launch succeeded although a rank failed")
endif()
string(REGEX MATCHALL "all_reduce of 4194304 bytes \\(f32 x 1048576 on cpu, sum\\) on group 'world' \\(size ${NP}\\) did not complete within ${TIMEOUT_S} s" hits "${err}")
list(LENGTH hits count)
if(count LESS ${EXPECT_COUNT})
  message(FATAL_ERROR "expected ${EXPECT_COUNT} ranks to report the timeout, saw ${count}")
endif()
math(EXPR bound "${TIMEOUT_S} * 4 + 10")
if(elapsed GREATER ${bound})
  message(FATAL_ERROR "the launch took ${elapsed} s, more than ${bound} s")
endif()
