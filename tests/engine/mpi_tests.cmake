# Multi-rank tests of the ZeRO engine.
zt_add_mpi_test(zt_test_engine_stages ${CMAKE_CURRENT_LIST_DIR}/stages_mpi.cpp NPS 1 2 3 4
                SUBSET_NPS 4 SUBSET "-Optimizers.*:Accumulation.*")
zt_add_mpi_test(zt_test_engine_offload ${CMAKE_CURRENT_LIST_DIR}/offload_mpi.cpp NPS 1 2 3
                SUBSET_NPS 3 SUBSET "Stages/OffloadParity.*/stage1_bf16:Stages/OffloadParity.*/stage3_f32:Stages/NvmeParity.*/stage2_bf16:OffloadNvme.*")
zt_add_mpi_test(zt_test_engine_activation_checkpointing ${CMAKE_CURRENT_LIST_DIR}/activation_checkpointing_mpi.cpp NPS 1 2)
zt_add_mpi_test(zt_test_engine_param_offload ${CMAKE_CURRENT_LIST_DIR}/param_offload_mpi.cpp NPS 1 2 3
                SUBSET_NPS 3 SUBSET "*ParamOffloadParity.*/bf16_offload_optimizer:*ParamOffloadNvmeParity.*/bf16_max_in_cpu_100:ParamOffloadBuffers.*:ParamOffloadNvme.*")
