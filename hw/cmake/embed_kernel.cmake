# Writes OUT: a C++ source defining MatchActionKernelSource() as image_format.h + the kernel.
file(READ ${HEADER} header)
file(READ ${KERNEL} kernel)
file(WRITE ${OUT}.tmp
  "// Generated from hw/include/nicflow/hw/image_format.h and hw/kernels/match_action.cl.\n"
  "#include \"nicflow/hw/kernel_runtime.h\"\n"
  "namespace nicflow::hw {\n"
  "namespace { constexpr char kSource[] = R\"NFCL(${header}\n#line 1 \"match_action.cl\"\n${kernel})NFCL\"; }\n"
  "std::string_view MatchActionKernelSource() { return {kSource, sizeof kSource - 1}; }\n"
  "}  // namespace nicflow::hw\n")
file(COPY_FILE ${OUT}.tmp ${OUT} ONLY_IF_DIFFERENT)
