#!/bin/bash
# make_corpus.sh BUILD_DIR - writes the seed corpus of the fuzz harnesses
# into tests/fuzz/corpus/ from the project's own generators: the layers of
# tests/gen_layers.py and tests/gen_cases.py, built with imgtool into
# indexes, blob tails and OCI documents, plus HTTP answers written here.
# Run it again after a format change; inputs found by fuzzing (crashes
# kept as regression tests) are named crash-* and left alone.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
tests=$(cd "$here/.." && pwd)
build=$(cd "${1:?usage: make_corpus.sh BUILD_DIR}" && pwd)
imgtool=$build/tools/imgtool
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
out=$here/corpus
mkdir -p "$out"/{index,tar,image,remote}
find "$out" -type f ! -name 'crash-*' -delete

# Layouts: the synthetic image (every entry kind, sparse files) and a few
# of the generated cases, each with one or more layers.
python3 "$tests/gen_layers.py" "$work/syn" >/dev/null
python3 "$tests/mkoci.py" "$work/syn-oci" "$work/syn"/l{1,2,3}.tar >/dev/null
layouts=(syn)
for c in attrs hardlinks names sparse whiteouts frames root_entries; do
	python3 "$tests/gen_cases.py" "$c" "$work/$c" >/dev/null
	mapfile -t ls < <(sed "s|^|$work/$c/|" "$work/$c/layers")
	python3 "$tests/mkoci.py" "$work/$c-oci" "${ls[@]}" >/dev/null
	layouts+=("$c")
	# Plain tars are the layer reader's seeds.
	for t in "${ls[@]}"; do
		case $t in *.tar) ;; *) continue ;; esac
		python3 "$here/corpus_docs.py" --tar "$t" "$out/tar/$c-${t##*/}"
	done
done
python3 "$here/corpus_docs.py" --tar "$work/syn/l3.tar" "$out/tar/syn-l3.tar"

for l in "${layouts[@]}"; do
	"$imgtool" build -q "oci:$work/$l-oci:latest" "oci:$work/$l-out:latest"
	python3 "$here/corpus_docs.py" "$work/$l-out" "$out" "$l"
done
python3 "$here/corpus_docs.py" --remote "$out/remote"
du -sh "$out"
