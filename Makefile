# Thin front door for newcomers; CMake presets do the real work.
.PHONY: all deps bench test example clean

all: test

deps:
	bash scripts/install-deps.sh

# The main job: release build, the benchmark table against every peer.
bench: deps
	bash bench/run

# Everything CI runs: unit tests, sanitizers, stress, planted bugs, fuzzing.
test: deps
	bash scripts/test-all.sh

example: deps
	bash examples/run-demo.sh

clean:
	rm -rf build
