SHELL := /bin/bash
# Skiff: every command the README shows. Run as root on Debian (the lessons create namespaces).
#   make demo            build, prepare the busybox sample, run the latest lesson on it
#   make test            the full test suite (what CI runs)
#   make check LESSON=03 one lesson's claims, pass or fail, in plain words
#   make lint            swift-format, warnings as errors

# Debian packages the build, the samples and the tests use.
DEBIAN_PACKAGES := busybox-static gcc libc6-dev pkg-config libseccomp-dev libcap-dev libarchive-dev \
	util-linux iproute2 iputils-ping nftables iptables \
	docker.io containerd runc hyperfine \
	docker-registry skopeo umoci apache2-utils openssl libcurl4-openssl-dev
SAMPLE := rootfs-samples/build/busybox
# Warnings are errors here, as in CI (DESIGN.md §6).
SWIFT_BUILD_FLAGS := -Xswiftc -warnings-as-errors
LATEST_LESSON := lesson11-security

.PHONY: deps build samples test check demo runtime lint

deps:
	@missing=$$(for package in $(DEBIAN_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$package 2>/dev/null | grep -q 'ok installed' || echo $$package; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:" $$missing; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

build: deps
	swift build $(SWIFT_BUILD_FLAGS)

LAYER_FIXTURES := rootfs-samples/build/layers

samples: deps $(SAMPLE)/.skiff-sample $(LAYER_FIXTURES)/change.tar.gz

$(SAMPLE)/.skiff-sample: rootfs-samples/build-busybox.sh rootfs-samples/probe/probe.c
	rootfs-samples/build-busybox.sh $(SAMPLE)

$(LAYER_FIXTURES)/change.tar.gz: rootfs-samples/build-layers.sh $(shell find rootfs-samples/layers -type f)
	rootfs-samples/build-layers.sh $(LAYER_FIXTURES)

test: build samples
	swift build --build-tests $(SWIFT_BUILD_FLAGS)
	swift test --skip-build

# One lesson's tests, each claim as PASS or FAIL; all of them without LESSON.
check: build samples
	swift build --build-tests $(SWIFT_BUILD_FLAGS)
	@set -o pipefail; swift test --skip-build --filter 'Lesson$(LESSON)' 2>&1 | sed -n \
		-e 's/^.*Test "\(.*\)" passed.*$$/PASS  \1/p' \
		-e 's/^.*Test "\(.*\)" failed.*$$/FAIL  \1/p' \
		-e 's/^.*Test "\(.*\)" recorded an issue at \([^ ]*\): \(.*\)$$/      \2: \3/p' \
		-e 's/^.*Test run with \(.*\)$$/\1/p'

demo: build samples
	.build/debug/$(LATEST_LESSON) --explain --name demo --memory 32m --pids 50 --stats \
		--layer $(LAYER_FIXTURES)/base.tar.gz --layer $(LAYER_FIXTURES)/change.tar.gz -- sh -c \
		'echo "hostname: $$(hostname)"; /probe idmap; echo "addresses:"; /probe addrs; /probe routes; echo "processes:"; /probe ps; \
		echo "/etc/app.conf: $$(cat /etc/app.conf)"; echo "/docs: $$(ls /docs)"; /probe caps | grep CapEff; \
		/probe try-syscall mount; /probe memhog 64'; \
		echo "exit status $$? (137: killed by the kernel's OOM killer at the memory limit)"

# skiff-runtime as it should be installed (Docker: --add-runtime skiff=$$PWD/.build-static/release/skiff-runtime):
# release, with the Swift runtime and Foundation linked statically.
runtime:
	swift build -c release --static-swift-stdlib --scratch-path .build-static --product skiff-runtime

lint:
	swift format lint --strict --recursive --parallel Package.swift Sources lessons Tests
