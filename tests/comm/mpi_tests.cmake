# Multi-rank tests of the comm layer.
zt_add_mpi_test(zt_test_comm_collectives ${CMAKE_CURRENT_LIST_DIR}/collectives_mpi.cpp NPS 2 3 4)
