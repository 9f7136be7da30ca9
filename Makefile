# Conveniences for developers; the README's commands are the scripts themselves.
.PHONY: deps build test demo
deps:
	scripts/deps.sh
build:
	scripts/build.sh
test:
	scripts/test.sh
demo:
	scripts/demo.sh
