#!/usr/bin/env bash
# Runs the notebooks in examples/ and writes each one's page, docs/notebooks/NAME.md: its
# introduction (the file's //! comment), the command that runs it, its whole transcript, and
# its pictures (copied to docs/notebooks/NAME/), so a reader sees every result without compiling.
#
#   tools/notebooks.sh              # every example (about 15 minutes on two cores)
#   tools/notebooks.sh fp8 gemma3n  # only these
#
# `cargo test --test notebooks` checks that every example has its page and that the README links it.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"

if [ "$#" -gt 0 ]; then
    names=("$@")
else
    names=()
    for f in examples/*.rs; do names+=("$(basename "$f" .rs)"); done
fi
for name in "${names[@]}"; do
    [ -f "examples/$name.rs" ] || { echo "no examples/$name.rs" >&2; exit 1; }
done

cargo build --release --examples
mkdir -p docs/notebooks
for name in "${names[@]}"; do
    echo "running $name" >&2
    rm -rf "target/examples-out/$name"
    log="$(mktemp)"
    started=$(date +%s)
    status=0
    "target/release/examples/$name" >"$log" 2>&1 || status=$?
    seconds=$(( $(date +%s) - started ))
    page="docs/notebooks/$name.md"
    title="$(grep -m1 '^//! # ' "examples/$name.rs" | sed 's|^//! # ||' || true)"
    [ -n "$title" ] || title="$(grep -m1 '^//!' "examples/$name.rs" | sed 's|^//! *||' || true)"
    rm -rf "docs/notebooks/$name"
    {
        echo "# \`$name\`: $title"
        echo
        echo "From [\`examples/$name.rs\`](../../examples/$name.rs), run with"
        echo "\`cargo run --release --example $name\`; this page was written by \`tools/notebooks.sh\`"
        echo "on $(date -u +%Y-%m-%d) (the run took ${seconds} s on $(nproc) cores; timings and measured speeds are this machine's)."
        echo
        # The introduction: the //! lines after the title, as Markdown.
        sed -n '/^\/\/!/p' "examples/$name.rs" | sed 's|^//! \{0,1\}||' | grep -v '^# ' || true
        echo
        echo "## Output"
        echo
        if [ "$status" -ne 0 ]; then
            echo "**The run ended with exit status $status.**"
            echo
        fi
        echo '```text'
        # Progress-bar redraws end in carriage returns: keep what a terminal would show last.
        sed "s|$root/||g" "$log" | sed 's/.*\r//'
        echo '```'
        if [ -d "target/examples-out/$name" ] && ls "target/examples-out/$name"/*.png >/dev/null 2>&1; then
            mkdir -p "docs/notebooks/$name"
            echo
            echo "## Pictures"
            for png in "target/examples-out/$name"/*.png; do
                cp "$png" "docs/notebooks/$name/"
                echo
                echo "![$(basename "$png" .png)]($name/$(basename "$png"))"
            done
        fi
    } >"$page"
    rm -f "$log"
    echo "wrote $page (${seconds} s, exit $status)" >&2
done
