# A layer graph like the one CMakeLists.txt writes, for the fixture tree under src/: base, then
# tape and engine sharing one directory (as src/autograd does), then top.
set(GTA_LAYERS "base;tape;engine;top")
set(GTA_LAYER_base_SOURCES "src/base/base.cpp")
set(GTA_LAYER_base_DEPS "")
set(GTA_LAYER_tape_SOURCES "src/pair/tape.cpp")
set(GTA_LAYER_tape_DEPS "base")
set(GTA_LAYER_engine_SOURCES "src/pair/engine.cpp")
set(GTA_LAYER_engine_DEPS "tape")
set(GTA_LAYER_top_SOURCES "src/top/top.cpp")
set(GTA_LAYER_top_DEPS "engine")
set(GTA_INCLUDE_DIRS "src")
