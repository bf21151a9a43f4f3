# Thin front door for newcomers; CMake presets do the real work.
.PHONY: all deps bench test test-platforms example clean

all: test

deps:
	bash scripts/install-deps.sh

# The main job: release build, the benchmark table against every peer.
bench: deps
	bash bench/run

# Everything CI runs: unit tests, sanitizers, stress, planted bugs, fuzzing.
test: deps
	bash scripts/test-all.sh

# The other targets this machine can build and run: Linux aarch64 under
# qemu, musl, the POSIX backend (README, "Platforms").
test-platforms: deps
	bash scripts/test-platforms.sh

example: deps
	bash examples/run-demo.sh

clean:
	rm -rf build
