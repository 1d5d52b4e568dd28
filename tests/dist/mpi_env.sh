# mpi_env.sh: sourced by the tests/dist scripts: lets Open MPI run as root (CI runs as root) and
# keeps it quiet and local. See ../shared/research/infra.md §3.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1
# No InfiniBand/UCX here; keep the component search short and deterministic.
export OMPI_MCA_pml=ob1
