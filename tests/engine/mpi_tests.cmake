# Multi-rank tests of the ZeRO engine.
zt_add_mpi_test(zt_test_engine_stages ${CMAKE_CURRENT_LIST_DIR}/stages_mpi.cpp NPS 1 2 3 4)
zt_add_mpi_test(zt_test_engine_offload ${CMAKE_CURRENT_LIST_DIR}/offload_mpi.cpp NPS 1 2 3)
zt_add_mpi_test(zt_test_engine_activation_checkpointing ${CMAKE_CURRENT_LIST_DIR}/activation_checkpointing_mpi.cpp NPS 1 2)
zt_add_mpi_test(zt_test_engine_param_offload ${CMAKE_CURRENT_LIST_DIR}/param_offload_mpi.cpp NPS 1 2 3)
