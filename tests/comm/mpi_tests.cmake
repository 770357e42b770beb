# Multi-rank tests of the comm layer.
zt_add_mpi_test(zt_test_comm_collectives ${CMAKE_CURRENT_LIST_DIR}/collectives_mpi.cpp NPS 2 3 4)

# Faults, through zt launch: a rank killed in the middle of an all_reduce, and a rank that comes
# too late. The survivors must exit non-zero with the timeout error within seconds.
add_executable(zt_test_comm_faults ${CMAKE_CURRENT_LIST_DIR}/faults_mpi.cpp)
target_link_libraries(zt_test_comm_faults PRIVATE zt)
add_test(NAME zt_test_comm_dead_rank
         COMMAND ${CMAKE_COMMAND} -DZT=$<TARGET_FILE:zt_cli> -DPROGRAM=$<TARGET_FILE:zt_test_comm_faults> -DMODE=die
                 -DNP=3 -DTIMEOUT_S=2 -DEXPECT_COUNT=2 -P ${CMAKE_CURRENT_LIST_DIR}/check_fault.cmake)
add_test(NAME zt_test_comm_late_rank
         COMMAND ${CMAKE_COMMAND} -DZT=$<TARGET_FILE:zt_cli> -DPROGRAM=$<TARGET_FILE:zt_test_comm_faults> -DMODE=late
                 -DNP=3 -DTIMEOUT_S=2 -DEXPECT_COUNT=2 -P ${CMAKE_CURRENT_LIST_DIR}/check_fault.cmake)
set_tests_properties(zt_test_comm_dead_rank zt_test_comm_late_rank PROPERTIES TIMEOUT 180 PROCESSORS 3)
