# Multi-rank checkpoint tests: exact resume under every stage; reload at other world sizes and
# stages through sub-groups of the launched world.
zt_add_mpi_test(zt_test_checkpoint_resume ${CMAKE_CURRENT_LIST_DIR}/resume_mpi.cpp NPS 1 2 3 4)
zt_add_mpi_test(zt_test_checkpoint_param_offload ${CMAKE_CURRENT_LIST_DIR}/param_offload_resume_mpi.cpp NPS 1 2 3)
