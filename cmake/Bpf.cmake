# Building BPF programs into libbpf skeletons, inside the build tree only.

find_program(IDLEPOOL_CLANG NAMES clang clang-14 REQUIRED)
find_program(IDLEPOOL_BPFTOOL NAMES bpftool PATHS /usr/sbin /usr/local/sbin REQUIRED)

set(IDLEPOOL_VMLINUX_BTF "/sys/kernel/btf/vmlinux" CACHE FILEPATH
    "Kernel BTF that vmlinux.h is generated from (CO-RE relocates the probe to the running kernel at load time)")

if(CMAKE_SYSTEM_PROCESSOR MATCHES "x86_64|AMD64")
  set(IDLEPOOL_BPF_ARCH x86)
elseif(CMAKE_SYSTEM_PROCESSOR MATCHES "aarch64|arm64")
  set(IDLEPOOL_BPF_ARCH arm64)
else()
  message(FATAL_ERROR "idlepool: no BPF target arch for ${CMAKE_SYSTEM_PROCESSOR}")
endif()

# vmlinux.h, generated from kernel BTF into the build tree; never edited by hand.
set(IDLEPOOL_VMLINUX_DIR ${CMAKE_BINARY_DIR}/bpf/vmlinux)
add_custom_command(
  OUTPUT ${IDLEPOOL_VMLINUX_DIR}/vmlinux.h
  COMMAND ${CMAKE_COMMAND} -E make_directory ${IDLEPOOL_VMLINUX_DIR}
  COMMAND sh -c "test -r '${IDLEPOOL_VMLINUX_BTF}' || { echo 'idlepool: no kernel BTF at ${IDLEPOOL_VMLINUX_BTF}; set -DIDLEPOOL_VMLINUX_BTF=' >&2; exit 1; }"
  COMMAND sh -c "'${IDLEPOOL_BPFTOOL}' btf dump file '${IDLEPOOL_VMLINUX_BTF}' format c > '${IDLEPOOL_VMLINUX_DIR}/vmlinux.h.tmp'"
  COMMAND ${CMAKE_COMMAND} -E rename ${IDLEPOOL_VMLINUX_DIR}/vmlinux.h.tmp ${IDLEPOOL_VMLINUX_DIR}/vmlinux.h
  COMMENT "Generating vmlinux.h from ${IDLEPOOL_VMLINUX_BTF}"
  VERBATIM)
add_custom_target(idlepool_vmlinux_h DEPENDS ${IDLEPOOL_VMLINUX_DIR}/vmlinux.h)

# idlepool_bpf_skeleton(<name> <source.bpf.c> [DEPENDS headers...])
# Compiles <source> with clang -target bpf into <name>.bpf.o and generates <name>.skel.h with `bpftool gen
# skeleton`. Produces the INTERFACE library <name>_skel, whose include directory holds the skeleton.
function(idlepool_bpf_skeleton name source)
  cmake_parse_arguments(ARG "" "" "DEPENDS" ${ARGN})
  set(out ${CMAKE_CURRENT_BINARY_DIR})
  set(obj ${out}/${name}.bpf.o)
  set(skel ${out}/${name}.skel.h)
  get_filename_component(src ${source} ABSOLUTE)
  add_custom_command(
    OUTPUT ${obj}
    COMMAND ${IDLEPOOL_CLANG} -g -O2 -target bpf -D__TARGET_ARCH_${IDLEPOOL_BPF_ARCH} -Wall -Werror
            -I${IDLEPOOL_VMLINUX_DIR} -I${PROJECT_SOURCE_DIR}/include -I${CMAKE_CURRENT_SOURCE_DIR}
            -c ${src} -o ${obj}
    DEPENDS ${src} ${IDLEPOOL_VMLINUX_DIR}/vmlinux.h ${ARG_DEPENDS}
    COMMENT "Compiling BPF object ${name}.bpf.o"
    VERBATIM)
  add_custom_command(
    OUTPUT ${skel}
    COMMAND sh -c "'${IDLEPOOL_BPFTOOL}' gen skeleton '${obj}' name ${name}_bpf > '${skel}.tmp'"
    COMMAND ${CMAKE_COMMAND} -E rename ${skel}.tmp ${skel}
    DEPENDS ${obj}
    COMMENT "Generating BPF skeleton ${name}.skel.h"
    VERBATIM)
  add_custom_target(${name}_skel_gen DEPENDS ${skel})
  add_dependencies(${name}_skel_gen idlepool_vmlinux_h)
  add_library(${name}_skel INTERFACE)
  target_include_directories(${name}_skel INTERFACE ${out})
  add_dependencies(${name}_skel ${name}_skel_gen)
endfunction()
