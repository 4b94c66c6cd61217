#!/usr/bin/env bash
# The one system package the test suite needs beside its Python ones: Graphviz's `dot`, with
# which the graph-drawing tests render SVG and PNG. Installs it from Debian/Ubuntu's packages
# when it is missing (as root, or through sudo); does nothing when `dot` is already there.
set -euo pipefail
if command -v dot >/dev/null 2>&1; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "Graphviz's dot is missing: install Graphviz with your system's package manager" >&2
    exit 1
fi
sudo_if_needed=$([ "$(id -u)" -eq 0 ] && echo "" || echo "sudo")
echo "+ apt-get install graphviz"
$sudo_if_needed apt-get update -qq
$sudo_if_needed apt-get install -y -qq graphviz
