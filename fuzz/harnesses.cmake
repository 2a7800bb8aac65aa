# The fuzz harnesses and the libraries each one needs. Included by
# fuzz/CMakeLists.txt (libFuzzer builds, clang) and tests/CMakeLists.txt
# (replay builds with any compiler, run by ctest over fuzz/corpus/<name>/).
set(CLOUDMERGE_FUZZ_HARNESSES tokenizer key_types s3_xml events job_spec check_key merge spill_reader)
set(CLOUDMERGE_FUZZ_DIR ${CMAKE_CURRENT_LIST_DIR})

# cloudmerge_fuzz_harness(<target> <name> [extra sources...]): an executable from
# fuzz/<name>_fuzz.cc linked with what <name> exercises.
function(cloudmerge_fuzz_harness target name)
  add_executable(${target} ${CLOUDMERGE_FUZZ_DIR}/${name}_fuzz.cc ${ARGN})
  if(name STREQUAL "s3_xml")
    target_include_directories(${target} PRIVATE ${PUGIXML_INCLUDE_DIR})
    target_link_libraries(${target} PRIVATE cloudmerge_aws)
  elseif(name MATCHES "^(events|job_spec|check_key)$")
    target_link_libraries(${target} PRIVATE cloudmerge_pipeline)
  else()
    target_link_libraries(${target} PRIVATE cloudmerge_core)
  endif()
endfunction()
