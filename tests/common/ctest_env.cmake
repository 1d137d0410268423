# Included by ctest (tests/CMakeLists.txt, TEST_INCLUDE_FILES): the environment of every test.
set(ENV{DIFFU_PRECISION} fp32)
